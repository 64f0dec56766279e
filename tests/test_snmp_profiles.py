"""SNMP device profiles (agent/snmp/profiles.py) and their expressions (agent/snmp/expr.py)."""

from __future__ import annotations

import textwrap
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from agent.snmp.expr import Expression, ExpressionError
from agent.snmp.profiles import METRIC_NAME, OID, Library, ProfileError, parse_profile

SHIPPED = resources.files("agent").joinpath("data", "snmp")


def shipped_files() -> list[str]:
    return sorted(e.name for e in SHIPPED.iterdir() if e.name.endswith(".toml"))


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def library(*raws: dict) -> Library:
    return Library([parse_profile(raw, "test") for raw in raws])


# ---------------------------------------------------------------- shipped profiles

@pytest.mark.parametrize("file", shipped_files())
def test_every_shipped_profile_loads(file: str) -> None:
    raw = tomllib.loads(SHIPPED.joinpath(file).read_text("utf-8"))
    names = [p["name"] for p in raw["profiles"]] if "profiles" in raw else [raw["name"]]
    lib = Library.load()
    for name in names:
        profile = lib.profiles[name]
        assert profile.source == f"agent/data/snmp/{file}"
        assert profile.description, name
        assert profile.detect or profile.identifies or profile.always, f"{name}: polled never"
        for metric in profile.metrics():
            assert METRIC_NAME.match(metric.name) and metric.description, (name, metric)
        for trap in profile.traps:
            assert OID.match(trap.oid) and trap.name and trap.severity in ("info", "warning", "critical")


def test_shipped_library_has_the_standard_mibs_and_system_always() -> None:
    lib = Library.load()
    assert {"system", "if-mib", "host-resources", "ucd-snmp", "ups-mib", "printer-mib",
            "entity-sensor"} <= set(lib.profiles)
    assert [p.name for p in lib.profiles.values() if p.always] == ["system"]
    assert {p.name for p in lib.detectable} >= {"if-mib", "ups-mib", "printer-mib", "entity-sensor"}
    assert lib.traps()["1.3.6.1.6.3.1.1.5.3"][1].name == "link_down"


# ---------------------------------------------------------------- identify

def test_identify_picks_the_longest_sysobjectid_prefix() -> None:
    lib = library(
        {"name": "vendor", "sysobjectid": ["1.3.6.1.4.1.9."], "kind": "switch"},
        {"name": "vendor-ap", "sysobjectid": ["1.3.6.1.4.1.9.6.1."], "kind": "wireless"},
        {"name": "linux", "sysdescr": ["^Linux "], "kind": "server"},
    )
    assert lib.identify("1.3.6.1.4.1.9.6.1.80", "Linux, Cisco WAP371").name == "vendor-ap"
    assert lib.identify("1.3.6.1.4.1.9.1.1208", "Linux on a switch").name == "vendor"
    assert lib.identify("1.3.6.1.4.1.9.6.1", "").name == "vendor-ap"  # the prefix without its dot
    # a prefix ends at a dot: enterprise 90 is not Cisco (9)
    assert lib.identify("1.3.6.1.4.1.90.1", "") is None


def test_identify_falls_back_to_sysdescr_patterns() -> None:
    lib = library(
        {"name": "vendor", "sysobjectid": ["1.3.6.1.4.1.9."], "kind": "switch"},
        {"name": "linux", "sysdescr": ["^Linux "], "kind": "server"},
    )
    assert lib.identify("1.3.6.1.4.1.99999.1", "Linux box 6.1.0 x86_64").name == "linux"
    assert lib.identify("", "Linux box").name == "linux"
    assert lib.identify("1.3.6.1.4.1.99999.1", "Windows") is None
    assert lib.identify("1.3.6.1.4.1.99999.1", "not Linux at the start") is None


def test_identify_with_the_shipped_profiles() -> None:
    lib = Library.load()
    assert lib.identify("1.3.6.1.4.1.14988.1", "router").name == "mikrotik-routeros"
    assert lib.identify("1.3.6.1.4.1.12356.101.1.644", "").kind == "firewall"
    assert lib.identify("1.3.6.1.4.1.8072.3.2.10", "anything").name == "net-snmp-linux"
    assert lib.identify("1.3.6.1.4.1.99999.7", "Linux host 5.10").name == "net-snmp-linux"
    assert lib.identify("1.3.6.1.4.1.99999.7", "Some appliance") is None


# ---------------------------------------------------------------- resolve

def test_resolve_adds_includes_and_system_once() -> None:
    lib = library(
        {"name": "system", "always": True, "description": "always"},
        {"name": "if-mib", "detect": "1.3.6.1.2.1.2.2.1"},
        {"name": "host-resources", "detect": "1.3.6.1.2.1.25"},
        {"name": "vendor", "sysobjectid": ["1.3.6.1.4.1.9."], "include": ["if-mib", "host-resources"]},
    )
    assert [p.name for p in lib.resolve(["vendor"])] == ["system", "vendor", "if-mib", "host-resources"]
    assert [p.name for p in lib.resolve(["if-mib", "vendor", "if-mib"])] == \
        ["system", "if-mib", "vendor", "host-resources"]
    assert [p.name for p in lib.resolve(["system"])] == ["system"]
    assert [p.name for p in lib.resolve([])] == ["system"]
    with pytest.raises(ProfileError, match="unknown SNMP profile 'nope'"):
        lib.resolve(["nope"])


def test_an_include_of_an_unknown_profile_fails_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, "vendor.toml", """
        name = "acme"
        sysobjectid = ["1.3.6.1.4.1.99999."]
        include = ["if-mib", "no-such-mib"]
    """)
    with pytest.raises(ProfileError) as info:
        Library.load(tmp_path)
    assert str(path) in str(info.value) and "'no-such-mib'" in str(info.value)


# ---------------------------------------------------------------- profiles_dir

def test_profiles_dir_adds_a_profile_and_replaces_a_shipped_one(tmp_path: Path) -> None:
    added = write(tmp_path, "acme.toml", """
        name = "acme-pdu"
        description = "ACME PDUs"
        sysobjectid = ["1.3.6.1.4.1.99999."]
        kind = "power"
        include = ["if-mib"]

        [[scalars]]
        name = "outlet_power_watts"
        oid = "1.3.6.1.4.1.99999.1.1.0"
        unit = "W"
        description = "Power drawn by all outlets"
    """)
    replaced = write(tmp_path, "if-mib.toml", """
        name = "if-mib"
        description = "Only the status of interfaces"
        detect = "1.3.6.1.2.1.2.2.1"

        [[tables]]
        name = "interfaces"
        label = "if"
        [[tables.columns]]
        name = "if_oper_up"
        oid = "1.3.6.1.2.1.2.2.1.8"
        expr = "value == 1"
        description = "1 when up"
    """)
    write(tmp_path, "notes.txt", "not a profile")
    shipped = Library.load()
    lib = Library.load(tmp_path)
    assert set(lib.profiles) == set(shipped.profiles) | {"acme-pdu"}
    assert lib.profiles["acme-pdu"].source == str(added)
    assert lib.identify("1.3.6.1.4.1.99999.3.1", "").name == "acme-pdu"
    assert [p.name for p in lib.resolve(["acme-pdu"])] == ["system", "acme-pdu", "if-mib"]
    if_mib = lib.profiles["if-mib"]
    assert if_mib.source == str(replaced) and if_mib.description == "Only the status of interfaces"
    assert [c.name for t in if_mib.tables for c in t.columns] == ["if_oper_up"]
    assert lib.profiles["ups-mib"] == shipped.profiles["ups-mib"]  # the others stay as shipped


def test_profiles_dir_that_is_no_directory(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="profiles_dir .* is not a directory"):
        Library.load(tmp_path / "missing")


# ---------------------------------------------------------------- malformed profiles

SCALAR = """
    [[scalars]]
    name = "temp_celsius"
    oid = "1.3.6.1.4.1.99999.1.1.0"
    description = "Temperature"
"""

MALFORMED = {
    "unknown_key": ('name = "bad"\ndetect = "1.3.6.1.2.1.2"\npoll_every = 5\n',
                    ["profile 'bad'", "unknown key 'poll_every'"]),
    "unknown_key_in_scalar": ('name = "bad"\n' + SCALAR.replace('description', 'units = "C"\ndescription'),
                              ["scalars[0]", "unknown key 'units'"]),
    "bad_oid": ('name = "bad"\n' + SCALAR.replace("1.3.6.1.4.1.99999.1.1.0", "1.3.6.1.4.1.x.1"),
                ["scalars[0].oid", "'1.3.6.1.4.1.x.1' is not a numeric OID"]),
    "bad_detect": ('name = "bad"\ndetect = "ifEntry"\n', ["profile 'bad'.detect", "not a numeric OID"]),
    "no_description": ('name = "bad"\n' + SCALAR.replace('description = "Temperature"', ""),
                       ["scalars[0]", "metric 'temp_celsius' needs a description"]),
    "bad_expr": ('name = "bad"\n' + SCALAR.replace('description', 'expr = "value +"\ndescription'),
                 ["scalars[0].expr", "'value +'"]),
    "unknown_name_in_expr": ('name = "bad"\n[[computed]]\nname = "ratio"\nexpr = "used / total"\n'
                             'description = "Ratio"\n',
                             ["computed[0].expr", "unknown name 'used'"]),
    "unknown_alias_in_table_expr": (
        'name = "bad"\n[[tables]]\nname = "t"\n[[tables.columns]]\nalias = "used"\n'
        'oid = "1.3.6.1.4.1.99999.2.1.1"\n[[tables.computed]]\nname = "pct"\n'
        'expr = "100 * used / size"\ndescription = "Share"\n',
        ["tables[0].computed[0].expr", "unknown name 'size'"]),
    "entity_sensor_missing_columns": (
        'name = "bad"\n[[tables]]\nname = "sensors"\nkind = "entity-sensor"\n'
        '[[tables.columns]]\nalias = "type"\noid = "1.3.6.1.2.1.99.1.1.1.1"\n'
        '[[tables.columns]]\nalias = "value"\noid = "1.3.6.1.2.1.99.1.1.1.4"\n'
        '[tables.sensor_types]\n8 = { name = "temperature_celsius" }\n',
        ["tables[0]", "entity-sensor table needs columns aliased type, scale, precision and value"]),
    "bad_metric_name": ('name = "bad"\n' + SCALAR.replace('"temp_celsius"', '"Temp-Celsius"'),
                        ["scalars[0]", "'Temp-Celsius' must be snake_case"]),
    "bad_type": ('name = "bad"\n' + SCALAR.replace('description', 'type = "rate"\ndescription'),
                 ["scalars[0]", "type 'rate' must be gauge or counter"]),
    "bad_severity": ('name = "bad"\n[[traps]]\noid = "1.3.6.1.4.1.99999.0.1"\nname = "x"\nseverity = "fatal"\n',
                     ["traps[0]", "severity must be one of"]),
    "bad_sysdescr_pattern": ('name = "bad"\nsysdescr = ["(unclosed"]\n', ["sysdescr pattern '(unclosed'"]),
    "not_toml": ('name = "bad\n', ["not valid TOML"]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_profile_names_the_file_and_field(tmp_path: Path, case: str) -> None:
    text, words = MALFORMED[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(text)
    with pytest.raises(ProfileError) as info:
        Library.load(tmp_path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for word in words:
        assert word in message, message


def test_a_malformed_profile_among_several_names_its_entry(tmp_path: Path) -> None:
    path = write(tmp_path, "vendors.toml", """
        [[profiles]]
        name = "good"
        sysobjectid = ["1.3.6.1.4.1.99998."]

        [[profiles]]
        name = "broken"
        sysobjectid = ["1.3.6.1.4.1.99999."]
        colour = "red"
    """)
    with pytest.raises(ProfileError) as info:
        Library.load(tmp_path)
    assert str(info.value).startswith(f"{path}: profile 'broken'")
    assert "unknown key 'colour'" in str(info.value)


# ---------------------------------------------------------------- expressions

@pytest.mark.parametrize("source, names, values, expected", [
    ("100 * used / size", {"used", "size"}, {"used": 25, "size": 200}, 12.5),
    ("(a + b) * 2 - c // 3 + c % 3", {"a", "b", "c"}, {"a": 1, "b": 2, "c": 10}, 4.0),
    ("2 ** 10", set(), {}, 1024.0),
    ("-value", {"value"}, {"value": 3}, -3.0),
    ("value == 1", {"value"}, {"value": 1}, 1.0),
    ("value == 1", {"value"}, {"value": 2}, 0.0),
    ("value >= 3", {"value"}, {"value": 4}, 1.0),
    ("1 < value <= 5", {"value"}, {"value": 5}, 1.0),
    ("value != 0 and not value > 9", {"value"}, {"value": 3}, 1.0),
    ("a or b", {"a", "b"}, {"a": 0, "b": 7}, 7.0),
    ("a / b if b > 0 else None", {"a", "b"}, {"a": 3, "b": 4}, 0.75),
    ("a / b if b > 0 else None", {"a", "b"}, {"a": 3, "b": 0}, None),
    ("100 * level / capacity if capacity > 0 and level >= 0 else None", {"level", "capacity"},
     {"level": -3, "capacity": 100}, None),
    ("a / b", {"a", "b"}, {"a": 1, "b": 0}, None),          # division by zero
    ("a // b", {"a", "b"}, {"a": 1, "b": 0}, None),
    ("a % b", {"a", "b"}, {"a": 1, "b": 0}, None),
    ("10.0 ** value", {"value"}, {"value": 400}, None),     # overflow
    ("a + b", {"a", "b"}, {"a": 1, "b": None}, None),       # a missing input
    ("a + b", {"a", "b"}, {"a": 1}, None),
])
def test_expression_evaluates(source: str, names: set[str], values: dict, expected: float | None) -> None:
    result = Expression(source, names)(values)
    assert result == expected
    assert result is None or isinstance(result, float)


@pytest.mark.parametrize("source, reason", [
    ("abs(value)", "Call is not allowed"),
    ("__import__('os').system('true')", "is not allowed"),
    ("value.real", "Attribute is not allowed"),
    ("'text'", "only numbers and None"),
    ("value == 'up'", "only numbers and None"),
    ("b'x'", "only numbers and None"),
    ("[value]", "List is not allowed"),
    ("value[0]", "Subscript is not allowed"),
    ("lambda: 1", "Lambda is not allowed"),
    ("(x := 1)", "NamedExpr is not allowed"),
    ("value if", "expression 'value if'"),
    ("other + 1", "unknown name 'other' (known: value)"),
    ("", "must be a non-empty string"),
    ("   ", "must be a non-empty string"),
])
def test_expression_rejects(source: str, reason: str) -> None:
    with pytest.raises(ExpressionError) as info:
        Expression(source, {"value"})
    assert reason in str(info.value)


def test_expression_rejects_what_is_not_a_string() -> None:
    with pytest.raises(ExpressionError, match="must be a non-empty string"):
        Expression(42, {"value"})


def test_expression_names_and_equality() -> None:
    expr = Expression("100 * used / size if size else None", {"used", "size", "units"})
    assert expr.names == {"used", "size"}
    assert expr == Expression("100 * used / size if size else None", {"used", "size"})
    assert len({expr, Expression("100 * used / size if size else None", {"used", "size"})}) == 1
