"""Names, leases, ports and URLs: the pure values every module validates before changing anything."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ansible_collections.baseful.branching.plugins.module_utils import model
from ansible_collections.baseful.branching.plugins.module_utils.errors import (
    BranchingError,
    InputError,
)
from ansible_collections.baseful.branching.plugins.module_utils.model import (
    NAME_PATTERN,
    NO_LEASE,
    BranchRecord,
    PortRange,
    connection_host,
    diff_view,
    lease_end,
    parse_port_range,
    parse_ttl,
    postgres_url,
    validate_docker_options,
    validate_image,
    validate_name,
    validate_network,
    validate_password,
    validate_port,
    validate_role,
    validate_source_url,
)


def test_imports_come_from_the_working_tree(repo_root):
    assert os.path.realpath(model.__file__) == str(repo_root / "plugins" / "module_utils" / "model.py")


# ------------------------------------------------------------------ names

@pytest.mark.parametrize("value", ["a", "inventory", "feature-123", "pr_42", "a" * 31, "z0-_"])
def test_valid_names_are_returned_unchanged(value):
    assert validate_name("name", value) == value


@pytest.mark.parametrize("value", [
    "", None, "a" * 32, "Feature", "FEATURE", "my branch", " lead", "trail ", "../etc", "a/b", "a;rm -rf",
    "1abc", "-abc", "_abc", "café", "ветка", "a.b", "a\nb", "abc\n", "\nabc", "abc\r", "a\x00",
])
def test_invalid_names_are_refused_naming_the_parameter(value):
    with pytest.raises(InputError) as caught:
        validate_name("database", value)
    assert caught.value.parameter == "database"
    assert str(caught.value).startswith("database: ")
    assert "1 to 31 characters" in str(caught.value)


NAME_ALPHABET = st.characters(codec="utf-8") | st.sampled_from("abcxyz019_-\n ./;A")


@given(st.text(alphabet=NAME_ALPHABET, max_size=40))
@example("abc\n")
@example("a" * 31)
@example("a" * 32)
def test_validate_name_accepts_exactly_the_full_matches_of_the_pattern(value):
    expected = re.fullmatch(r"[a-z][a-z0-9_-]{0,30}", value) is not None
    assert NAME_PATTERN.pattern == r"^[a-z][a-z0-9_-]{0,30}$"  # the contract in DESIGN.md
    try:
        accepted = validate_name("name", value) == value
    except InputError as error:
        assert error.parameter == "name"
        accepted = False
    assert accepted is expected


@pytest.mark.parametrize("value", ["postgres", "_app", "app_user1", "a" * 63])
def test_valid_roles(value):
    assert validate_role("user", value) == value


@pytest.mark.parametrize("value", ["", None, "App", "app-user", "1app", "a" * 64, "app\n", "app user"])
def test_invalid_roles_are_refused(value):
    with pytest.raises(InputError, match=r"^user: "):
        validate_role("user", value)


# ------------------------------------------------------------------ ttl

@pytest.mark.parametrize("value, seconds", [
    ("300", 300), (30, 30), ("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), (" 5 m ", 300), ("007", 7),
])
def test_ttl_durations(value, seconds):
    assert parse_ttl(value) == seconds


def test_no_ttl_means_no_lease():
    assert parse_ttl(None) is None


@pytest.mark.parametrize("value", ["", " ", "0", 0, "0h", "-5", -5, "abc", "5x", "1.5h", 1.5, "h", "5 hours", "1h30m", True])
def test_bad_ttls_are_refused(value):
    with pytest.raises(InputError) as caught:
        parse_ttl(value)
    assert str(caught.value).startswith("ttl: ")
    assert caught.value.parameter == "ttl"


UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@given(st.integers(min_value=1, max_value=10 ** 6), st.sampled_from(sorted(UNITS)))
def test_ttl_of_a_number_and_unit(number, unit):
    seconds = number * UNITS[unit]
    if seconds <= 3650 * 86400:
        assert parse_ttl(f"{number}{unit}") == seconds
    else:
        with pytest.raises(InputError, match=r"^ttl: .* is longer than the longest lease, 3650d"):
            parse_ttl(f"{number}{unit}")


def test_ttl_boundary_is_ten_years():
    assert parse_ttl("3650d") == 3650 * 86400
    with pytest.raises(InputError, match=r"^ttl: '3651d' is longer than the longest lease"):
        parse_ttl("3651d")


@given(st.one_of(st.text(max_size=12), st.integers(), st.floats(allow_nan=True)))
@example("1.5h")
@example("-0")
def test_ttl_parser_returns_a_positive_int_or_refuses_with_input_error(value):
    try:
        seconds = parse_ttl(value)
    except InputError as error:
        assert str(error).startswith("ttl: ")
        return
    if value in (None, ""):
        assert seconds is None
    elif str(value).strip().lower() == "none":
        assert seconds == NO_LEASE
    else:
        assert isinstance(seconds, int) and seconds > 0


@pytest.mark.parametrize("value", ["none", "None", " NONE "])
def test_ttl_none_removes_the_lease(value):
    assert parse_ttl(value) == NO_LEASE == 0


# ------------------------------------------------------------------ ports

def test_port_range_parses_and_behaves_as_a_closed_interval():
    ports = parse_port_range(" 54320 - 54323 ")
    assert ports == PortRange(54320, 54323)
    assert str(ports) == "54320-54323"
    assert list(ports) == [54320, 54321, 54322, 54323]
    assert 54320 in ports and 54323 in ports
    assert 54319 not in ports and 54324 not in ports


@pytest.mark.parametrize("value", ["1024-1024", "65535-65535", "1024-65535"])
def test_port_range_bounds(value):
    low, high = map(int, value.split("-"))
    assert parse_port_range(value) == PortRange(low, high)


@pytest.mark.parametrize("value", ["", "54320", "54999-54320", "1023-2000", "60000-65536", "a-b", "-1-5", "54320:54999",
                                   "54320-54999-55000"])
def test_bad_port_ranges_are_refused(value):
    with pytest.raises(InputError, match=r"^port_range: "):
        parse_port_range(value)


def test_validate_port():
    ports = PortRange(54320, 54330)
    assert validate_port(None, ports) is None
    assert validate_port(54320, ports) == 54320
    assert validate_port(54330, ports) == 54330
    for outside in (54319, 54331, 5432):
        with pytest.raises(InputError, match=rf"^port: {outside} is outside port_range 54320-54330$"):
            validate_port(outside, ports)


# ------------------------------------------------------------------ connection

@pytest.mark.parametrize("bind, host", [
    ("0.0.0.0", "127.0.0.1"), ("", "127.0.0.1"), ("::", "::1"), ("127.0.0.1", "127.0.0.1"), ("10.1.2.3", "10.1.2.3"),
    ("::1", "::1"),
])
def test_connection_host(bind, host):
    assert connection_host(bind) == host


def test_postgres_url_quotes_every_part():
    user, password, dbname = "app@corp", "p:/@?#%& é'\"", "my db/1"
    url = postgres_url(user, password, "127.0.0.1", 54321, dbname)
    assert url.startswith("postgresql://app%40corp:")
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1" and parts.port == 54321
    assert unquote(parts.username) == user
    assert unquote(parts.password) == password
    assert unquote(parts.path[1:]) == dbname
    assert "@" not in url.split("@", 1)[1]  # exactly one unquoted '@': the one before the host
    assert "#" not in url and "?" not in url and " " not in url


def test_postgres_url_brackets_ipv6_hosts():
    url = postgres_url("postgres", "secret", "::1", 5432, "postgres")
    assert url == "postgresql://postgres:secret@[::1]:5432/postgres"
    assert urlsplit(url).hostname == "::1"


# ------------------------------------------------------------------ leases and views

def _record(**values) -> BranchRecord:
    base = {"database": "inventory", "name": "feature", "status": "running", "is_default": False,
            "protected": False, "host": "127.0.0.1", "port": 54321,
            "container_name": "baseful-inventory-feature-abc123", "data_dir": "/data/inventory/feature",
            "created_at": "2024-01-01T00:00:00+00:00"}
    return BranchRecord(**{**base, **values})


def test_lease_end_and_expiry():
    applied = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert lease_end(None, applied) is None
    end = lease_end(7200, applied)
    assert end == "2024-01-01T14:00:00+00:00"
    record = _record(ttl_seconds=7200, expires_at=end)
    assert not record.expired(datetime(2024, 1, 1, 13, 59, 59, tzinfo=UTC))
    assert record.expired(datetime(2024, 1, 1, 14, 0, tzinfo=UTC))
    assert not _record().expired(datetime(2999, 1, 1, tzinfo=UTC))


def test_diff_view_is_secret_free_and_takes_the_live_status():
    assert diff_view(None) == {}
    view = diff_view(_record(ttl_seconds=60), "stopped")
    assert view == {"name": "feature", "status": "stopped", "is_default": False, "protected": False, "port": 54321,
                    "parent": None, "copy_mode": None, "copy_method": None, "ttl": 60, "migrations": [],
                    "masked": False, "mask": {}, "filter": {}}
    assert diff_view(_record())["status"] == "running"


def test_input_error_is_a_branching_error_with_the_parameter_first():
    error = InputError("port", "taken")
    assert isinstance(error, BranchingError)
    assert error.parameter == "port" and str(error) == "port: taken"


# ------------------------------------------------------------------ placement and connection inputs

@pytest.mark.parametrize("value", ["", "a;b", "../x", "a b", "caf\u00e9", "-x", "x" * 256, ["baseful"], None])
def test_bad_network_names_are_refused(value):
    with pytest.raises(InputError, match=r"^network: .* is not a Docker network name"):
        validate_network(value)


@pytest.mark.parametrize("value", ["baseful", "my_net.1", "A-b", "x" * 255])
def test_docker_network_names_are_accepted(value):
    validate_network(value)


@pytest.mark.parametrize("host, version, timeout, parameter", [
    ("", "auto", 60, "docker_host"), ("tcp:// x", "auto", 60, "docker_host"), ([], "auto", 60, "docker_host"),
    ("unix:///var/run/docker.sock", "abc", 60, "api_version"), ("unix:///var/run/docker.sock", "", 60, "api_version"),
    ("unix:///var/run/docker.sock", "1.0", 60, "api_version"), ("unix:///var/run/docker.sock", "1.23", 60, "api_version"),
    ("unix:///var/run/docker.sock", "auto", 0, "timeout"), ("unix:///var/run/docker.sock", "auto", 86401, "timeout"),
])
def test_bad_docker_options_name_their_parameter(host, version, timeout, parameter):
    with pytest.raises(InputError) as caught:
        validate_docker_options(host, version, timeout)
    assert caught.value.parameter == parameter


def test_good_docker_options_pass():
    validate_docker_options("tcp://10.0.0.1:2376", "1.41", 1)
    validate_docker_options("tcp://10.0.0.1:2376", "1.24", 1)
    validate_docker_options("ssh://deploy@host", "auto", 86400)
    validate_docker_options("unix://", "auto", 60)


@pytest.mark.parametrize("value", ["", " ", "postgres: 17", "postgres:17\n", "x" * 641, None, ["postgres:17"]])
def test_image_references_that_no_registry_allows_are_refused(value):
    with pytest.raises(InputError) as caught:
        validate_image(value)
    assert caught.value.parameter == "image"


@pytest.mark.parametrize("value", ["postgres:17", "registry.example.com:5000/Team/postgres:17-Debian",
                                   "postgres@sha256:" + "a" * 64,
                                   "r" * 255 + ":" + "t" * 128 + "@sha512:" + "a" * 128])
def test_image_references_are_otherwise_left_to_docker(value):
    validate_image(value)


@pytest.mark.parametrize("value", ["", "line\nbreak", "cr\rhere", "x" * 1001, "nul\x00"])
def test_bad_passwords_are_refused_without_being_echoed(value):
    with pytest.raises(InputError) as caught:
        validate_password(value)
    assert caught.value.parameter == "password"
    assert value not in str(caught.value) or value == ""


@pytest.mark.parametrize("value", ["http://h/db", "postgresql://", "postgresql:///db", "postgresql://h:notaport/db",
                                   "mysql://u:secret@h/db", "", "secret"])
def test_bad_source_urls_are_refused_without_being_echoed(value):
    with pytest.raises(InputError) as caught:
        validate_source_url(value)
    assert caught.value.parameter == "source_url"
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("value", ["postgresql://u:p@db.internal:5432/inventory", "postgres://h/db", None,
                                   "postgresql:///inventory?host=/var/run/postgresql"])
def test_good_source_urls_pass(value):
    validate_source_url(value)
