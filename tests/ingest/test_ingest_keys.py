"""The de-identification key: where it comes from, refusal without one, and that it never shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrpriv.ingest.keys import KEY_ENV, DeidKey, KeyUnavailableError, load_key

SECRET = "0123456789abcdef0123456789abcdef-secret"


def test_key_from_file_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, "e" * 40)
    path = tmp_path / "key"
    path.write_text(SECRET + "\n")
    key = load_key(path)
    assert key.secret == SECRET.encode() and key.source == "file"
    assert load_key().source == "env"


def test_running_without_a_key_is_refused_unless_a_throwaway_is_asked_for(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(KeyUnavailableError, match=KEY_ENV):
        load_key()
    first, second = load_key(throwaway=True), load_key(throwaway=True)
    assert first.source == "throwaway" and first.secret != second.secret


def test_short_or_missing_keys_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(KeyUnavailableError, match="shorter than 32 bytes") as caught:
        load_key()
    assert "short" not in str(caught.value).replace("shorter", "")
    with pytest.raises(KeyUnavailableError, match="does not exist"):
        load_key(tmp_path / "absent")
    monkeypatch.setenv(KEY_ENV, "  ")
    with pytest.raises(KeyUnavailableError, match="set but empty"):
        load_key(throwaway=True)  # a secret without its value must not turn into a random key


def test_the_key_never_prints():
    key = DeidKey(SECRET.encode(), "test")
    for text in (repr(key), str(key), f"{key}", str([key])):
        assert SECRET not in text
    assert SECRET not in key.check_value() and len(key.check_value()) == 16


def test_derivations_are_keyed_and_separated_by_purpose():
    key, other = DeidKey(SECRET.encode(), "test"), DeidKey(b"x" * 32, "test")
    assert key.digest("patient", "1") == key.digest("patient", "1")
    assert key.digest("patient", "1") != key.digest("uid", "1")
    assert key.digest("patient", "1") != other.digest("patient", "1")
    assert key.checksum(b"data") != other.checksum(b"data") and len(key.checksum(b"data")) == 64
