"""`fleetcare agent discover` (agent/snmp/discover.py): the command as a subprocess against two
real snmpd on 127.0.0.2 and 127.0.0.5 (same port), and its small helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.config import AgentConfig, SnmpTarget
from agent.settings import load_settings
from agent.snmp.discover import Found, addresses, config_block, device_name
from agent.snmp.session import Credentials
from tests.snmp_services import ROOT, SnmpdAgent


@dataclass
class Pair:
    first: SnmpdAgent
    second: SnmpdAgent

    @property
    def port(self) -> int:
        return self.first.port


@pytest.fixture
def pair(snmpd_factory: Callable[..., SnmpdAgent]) -> Pair:
    first = snmpd_factory("127.0.0.2")
    second = snmpd_factory("127.0.0.5", port=first.port, sys_name="rack-5-server")
    return Pair(first, second)


def discover(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetcare.cli", "agent", "discover", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env={k: v for k, v in os.environ.items() if not k.startswith("FLEETCARE_")})


def targets_of(stdout: str, tmp_path: Path) -> list[SnmpTarget]:
    """The printed blocks, as the agent would load them from its configuration file."""
    tomllib.loads(stdout)  # plain TOML first: a clear failure if it is not
    path = tmp_path / "agent.toml"
    path.write_text(stdout)
    return load_settings(AgentConfig, path, environ={}).snmp.targets


def test_discover_v2c_prints_a_block_per_responder(pair: Pair, tmp_path: Path) -> None:
    result = discover("--range", "127.0.0.0/29", "--port", str(pair.port), "--community",
                      pair.first.community, "--timeout", "0.5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("[[snmp.targets]]") == 2
    targets = targets_of(result.stdout, tmp_path)
    assert [(t.name, t.host) for t in targets] == [("fc-snmpd-127-0-0-2", "127.0.0.2"),
                                                   ("rack-5-server", "127.0.0.5")]
    for target in targets:
        assert isinstance(target, SnmpTarget)
        assert (target.port, target.version, target.community, target.profile) == \
            (pair.port, "2c", pair.first.community, "auto")
    # the responders are named: what they say they are, and what they were identified as
    assert "# fleetcare test snmpd on 127.0.0.2" in result.stdout
    assert "# fleetcare test snmpd on 127.0.0.5" in result.stdout
    assert result.stdout.count("identified as net-snmp-linux (server)") == 2
    assert "detected: host-resources, if-mib, ucd-snmp" in result.stdout
    assert "probing 6 address(es) in 127.0.0.0/29 with SNMPv2c" in result.stderr
    assert result.stderr.rstrip().endswith("2 device(s) found, 0 refused, 4 silent")


def test_discover_v3_lists_hosts_that_refuse_the_keys(pair: Pair, tmp_path: Path) -> None:
    first_user = pair.first.users["sha_aes"]
    common = ["--range", "127.0.0.0/29", "--port", str(pair.port), "--timeout", "0.5",
              "--v3-user", "sha_aes", "--v3-auth-protocol", "SHA", "--v3-priv-protocol", "AES",
              "--v3-priv-key", first_user.priv_key]

    wrong = discover(*common, "--v3-auth-key", "not-the-auth-key")
    assert wrong.returncode == 0, wrong.stderr
    assert "[[snmp.targets]]" not in wrong.stdout
    for host in ("127.0.0.2", "127.0.0.5"):
        assert f"{host}: answers but refused us: auth_failure: wrong digest" in wrong.stderr
    assert "probing 6 address(es) in 127.0.0.0/29 with SNMPv3" in wrong.stderr
    assert wrong.stderr.rstrip().endswith("0 device(s) found, 2 refused, 4 silent")

    # the first agent's keys: it is found; the second knows sha_aes with other keys
    right = discover(*common, "--v3-auth-key", first_user.auth_key)
    assert right.returncode == 0, right.stderr
    (target,) = targets_of(right.stdout, tmp_path)
    assert (target.host, target.version, target.user) == ("127.0.0.2", "3", "sha_aes")
    assert (target.auth_protocol, target.auth_key) == ("SHA", first_user.auth_key)
    assert (target.priv_protocol, target.priv_key) == ("AES", first_user.priv_key)
    assert "127.0.0.5: answers but refused us: auth_failure: wrong digest" in right.stderr
    assert right.stderr.rstrip().endswith("1 device(s) found, 1 refused, 4 silent")


@pytest.mark.parametrize("args, words", [
    (["--range", "10.0.0.0/8"], "--range 10.0.0.0/8 has 16777216 addresses; the limit is 4096"),
    (["--range", "192.0.2.0/20", "--max-hosts", "100"], "has 4096 addresses; the limit is 100"),
    (["--range", "192.0.2.300/24"], "--range '192.0.2.300/24'"),
    (["--range", "192.0.2.0/30", "--version", "3"], "SNMPv3 needs --v3-user"),
])
def test_discover_refuses_bad_ranges_with_exit_2(args: list[str], words: str) -> None:
    result = discover(*args)
    assert result.returncode == 2
    assert words in result.stderr and result.stderr.startswith("discover: ")
    assert result.stdout == ""


# ---------------------------------------------------------------- helpers

def test_addresses() -> None:
    assert addresses("127.0.0.0/29") == [f"127.0.0.{i}" for i in range(1, 7)]
    assert addresses("192.0.2.7") == ["192.0.2.7"]
    assert addresses("192.0.2.6/31") == ["192.0.2.6", "192.0.2.7"]
    assert len(addresses("192.0.2.0/20")) == 4094
    with pytest.raises(ValueError, match="the limit is 16"):
        addresses("192.0.2.0/27", max_hosts=16)


def found(host: str, sys_name: str, kind: str = "switch") -> Found:
    return Found(host, sys_name, "descr", "1.3.6.1.4.1.9.1.1", kind, "cisco", ["if-mib"])


def test_device_names_are_valid_and_unique() -> None:
    taken: set[str] = set()
    assert device_name(found("192.0.2.1", "core sw #1"), taken) == "core-sw-1"
    assert device_name(found("192.0.2.2", "core sw #1"), taken) == "core-sw-1-2"
    assert device_name(found("192.0.2.3", "<private>"), taken) == "switch-192-0-2-3"
    assert device_name(found("192.0.2.4", ""), taken) == "switch-192-0-2-4"
    assert device_name(found("192.0.2.5", "localhost"), taken) == "switch-192-0-2-5"


def test_a_v3_block_quotes_what_it_prints(tmp_path: Path) -> None:
    creds = Credentials("3", user='ops"team', auth_protocol="SHA256", auth_key='pa"ss\\word',
                        priv_protocol="AES256", priv_key="priv-key-123", context="vlan-10")
    block = config_block(found("192.0.2.9", "edge"), "edge", creds, 1161)
    (target,) = targets_of(block, tmp_path)
    assert (target.user, target.auth_key, target.context) == ('ops"team', 'pa"ss\\word', "vlan-10")
    assert (target.auth_protocol, target.priv_protocol, target.port) == ("SHA256", "AES256", 1161)
    assert "identified as cisco (switch)" in block
