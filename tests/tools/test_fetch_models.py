"""The model fetcher's Debian path: stale or empty apt lists are updated once and the download retried;
a version Debian no longer serves is reported as such, with what to change."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import fetch_models  # noqa: E402

ENTRY = {"id": "tesseract-archive", "package": "libarchive13", "version": "3.6.2-1+deb12u5"}
UNKNOWN = "E: Can't find a source to download version '3.6.2-1+deb12u5' of 'libarchive13:amd64'"


def fake_apt(monkeypatch, known_after_update):
    """apt-get that knows the version only after `apt-get update` (if `known_after_update`)."""
    calls, state = [], {"updated": False}

    def run(cmd, what, cwd=None):
        calls.append(cmd[1])
        if cmd[1] == "update":
            state["updated"] = True
        elif not (state["updated"] and known_after_update):
            raise fetch_models.FetchError(f"{what} failed:\n{UNKNOWN}")
        return ""

    monkeypatch.setattr(fetch_models, "run", run)
    monkeypatch.setattr(fetch_models, "_apt_lists_updated", False)
    monkeypatch.setattr(fetch_models.os, "geteuid", lambda: 0)
    return calls


def test_empty_lists_are_updated_once_and_the_download_retried(monkeypatch, tmp_path):
    calls = fake_apt(monkeypatch, known_after_update=True)
    fetch_models.apt_download(ENTRY, str(tmp_path))
    assert calls == ["download", "update", "download"]
    # The lists are fresh now: a second package is not updated for again.
    fetch_models.apt_download(ENTRY, str(tmp_path))
    assert calls == ["download", "update", "download", "download"]


def test_a_retired_version_is_named_with_the_fix(monkeypatch, tmp_path):
    calls = fake_apt(monkeypatch, known_after_update=False)
    with pytest.raises(fetch_models.FetchError) as error:
        fetch_models.apt_download(ENTRY, str(tmp_path))
    assert calls == ["download", "update", "download"]
    assert "no longer serves libarchive13=3.6.2-1+deb12u5" in str(error.value)
    assert "apt-cache policy libarchive13" in str(error.value)


def test_without_root_the_message_says_what_to_run(monkeypatch, tmp_path):
    calls = fake_apt(monkeypatch, known_after_update=True)
    monkeypatch.setattr(fetch_models.os, "geteuid", lambda: 1000)
    with pytest.raises(fetch_models.FetchError) as error:
        fetch_models.apt_download(ENTRY, str(tmp_path))
    assert calls == ["download"]
    assert "sudo apt-get update" in str(error.value)
