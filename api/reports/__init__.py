"""Customer health reports: data, words, charts, HTML and PDF, and the reports kept."""
