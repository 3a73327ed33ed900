"""hpgc/models/names.py rule by rule, with the expected names and messages written out."""

from __future__ import annotations

import pytest

from hpgc.models.names import (
    PROCESS_ID_RULE,
    ImageNameError,
    image_cache_name,
    is_managed_image,
    is_site_image,
    normalise_reference,
    process_id_problem,
    shown,
    unix_user_error,
)


def test_process_id_rule_and_message() -> None:
    assert PROCESS_ID_RULE == "1-128 letters, digits, '.', '_' or '-', starting with a letter, a digit or '_'"
    assert process_id_problem("a/b") == ("process id 'a/b' is not allowed: a process id is 1-128 letters, digits, "
                                         "'.', '_' or '-', starting with a letter, a digit or '_'")
    assert process_id_problem(7) == ("process id '7' is not allowed: a process id is 1-128 letters, digits, '.', "
                                     "'_' or '-', starting with a letter, a digit or '_'")
    assert process_id_problem("Z9") is None and process_id_problem("z-._") is None


@pytest.mark.parametrize("value, expected", [
    ("abc", "'abc'"),
    ("a\r\nb", "'a\\r\\nb'"),
    ("x" * 60, "'" + "x" * 60 + "'"),
    ("x" * 61, "'" + "x" * 60 + "'…"),
    (None, "'None'"),
    (12, "'12'"),
])
def test_shown(value: object, expected: str) -> None:
    assert shown(value) == expected


@pytest.mark.parametrize("ref, expected", [
    ("python:3.11-slim", "docker://python:3.11-slim"),
    ("  alpine  ", "docker://alpine"),
    ("registry.example:5000/team/tool:1.0", "docker://registry.example:5000/team/tool:1.0"),
    ("a/b@sha256:" + "0" * 64, "docker://a/b@sha256:" + "0" * 64),
    ("DOCKER://alpine", "docker://alpine"),
    ("Oras://reg.example/x:1", "oras://reg.example/x:1"),
    ("library://sylabs/default/alpine", "library://sylabs/default/alpine"),
    ("shub://vsoch/hello-world", "shub://vsoch/hello-world"),
    ("http://h.example/t.sif", "http://h.example/t.sif"),
    ("https://h.example/t.sif?x=1", "https://h.example/t.sif?x=1"),
])
def test_references_normalised(ref: str, expected: str) -> None:
    assert normalise_reference(ref) == expected


@pytest.mark.parametrize("ref, message", [
    ("Upper", "'Upper' is not a pullable image reference"),
    ("/abs/path.sif", "'/abs/path.sif' is not a pullable image reference"),
    ("file:///etc/passwd", "'file:///etc/passwd': images are pulled from docker://, oras://, library://, shub://, "
                           "http://, https:// only"),
    ("oras://", "'oras://' is not a pullable image reference"),
    ("oras://a b", "'oras://a b' is not a pullable image reference"),
    ("oras://a\tb", "'oras://a\\tb' is not a pullable image reference"),
    ("oras://a\x7fb", None),  # DEL is no control character below 32: allowed past this check
    ("https://h/\x01", "'https://h/\\x01' is not a pullable image reference"),
    ("docker://Upper", "'docker://Upper' is not a valid Docker image reference"),
    ("docker://a:", "'docker://a:' is not a valid Docker image reference"),
    ("docker://a@sha256:" + "0" * 63, "'docker://a@sha256:" + "0" * 42 + "'… is not a valid Docker image "
                                      "reference"),
])
def test_references_refused(ref: str, message: str | None) -> None:
    if message is None:
        assert normalise_reference(ref) == ref
        return
    with pytest.raises(ImageNameError) as err:
        normalise_reference(ref)
    assert str(err.value) == message


@pytest.mark.parametrize("ref, expected", [
    ("docker://alpine", "alpine-"),
    ("https://h.example/x/tool.sif?token=1", "tool-"),
    ("https://h.example/x/tool.sif", "tool-"),
    ("https://h.example/x/tool.sifx", "h.example_x_tool.sifx-"),
    ("oras://reg.example/..x..", "reg.example_..x-"),
    ("oras://_", "image-"),
    ("https://h.example/.sif", "image-"),
    ("docker://" + "a" * 100, "a" * 80 + "-"),
])
def test_cache_name_readable_part(ref: str, expected: str) -> None:
    name = image_cache_name(ref)
    assert name.startswith(expected) and name.endswith(".sif")
    assert len(name) == len(expected) + 16 + len(".sif")
    assert is_managed_image(name) and not is_site_image(name)


@pytest.mark.parametrize("name, site, managed", [
    ("tool.sif", True, False),
    ("_tool+1.sif", True, False),
    ("x" * 200 + ".sif", True, False),
    ("x" * 201 + ".sif", False, False),
    (".tool.sif", False, False),
    ("tool.img", False, False),
    ("a/b.sif", False, False),
    ("tool-0123456789abcdef.sif", False, True),
    ("tool-0123456789ABCDEF.sif", True, False),
    ("tool-0123456789abcde.sif", True, False),
    ("-0123456789abcdef.sif", False, True),
])
def test_site_and_managed_image_names(name: str, site: bool, managed: bool) -> None:
    assert (is_site_image(name), is_managed_image(name)) == (site, managed)


@pytest.mark.parametrize("name, error", [
    ("alice", None), ("_a", None), ("a" * 32, None), ("a.b-c_9", None), ("z", None),
    ("", "it is empty"), (None, "it is empty"), (5, "it is empty"),
    ("a" * 33, "it is longer than 32 characters"),
    ("Alice", "a Unix user name here has only lowercase letters, digits, '_', '.' and '-', starting with a letter "
              "or '_', at most 32 characters"),
    ("1a", "a Unix user name here has only lowercase letters, digits, '_', '.' and '-', starting with a letter or "
           "'_', at most 32 characters"),
    ("a$", "a Unix user name here has only lowercase letters, digits, '_', '.' and '-', starting with a letter or "
           "'_', at most 32 characters"),
])
def test_unix_user_rule(name: object, error: str | None) -> None:
    assert unix_user_error(name) == error


@pytest.mark.parametrize("ref, prefix", [
    ("https://h.example/a://b", "h.example_a_b-"),      # everything after the first '://' is the readable part
    ("https://h.example/x.sif?a?b", "x-"),             # the query starts at the first '?'
    ("https://tool.sif", "tool-"),                     # a .sif name without a path
    ("oras://reg.example/X", "reg.example_X-"),        # only '.', '_' and '-' are trimmed
])
def test_cache_name_readable_part_edges(ref: str, prefix: str) -> None:
    assert image_cache_name(ref).startswith(prefix)


def test_a_reference_is_split_at_its_first_scheme_separator() -> None:
    assert normalise_reference("oras://a://b") == "oras://a://b"
    assert normalise_reference("https://h.example/p?u=http://x") == "https://h.example/p?u=http://x"
