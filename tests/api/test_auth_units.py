"""API keys in-process: the key file format, the reloading store, how a request presents a key, the CLI."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from api import auth
from api.auth import ApiKey, KeyFileError, KeySpec, KeyStore, Scope, parse_key_file, presented_key
from api.gate import Need, need_of
from api.login import safe_next
from api.public import clip
from api.settings import ApiSettings


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def table(name: str, key: str, feeds: str = '["*"]', scopes: str = '["rankings"]') -> str:
    return f'[[keys]]\nname = "{name}"\nsha256 = "{sha(key)}"\nfeeds = {feeds}\nscopes = {scopes}\n'


def write(path: Path, text: str) -> None:
    """Replace the file atomically, as an operator's editor or deploy tool would; bump mtime for coarse clocks."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    if path.exists():
        st = path.stat()
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    tmp.replace(path)


def test_key_file_parses_scopes_and_feeds() -> None:
    specs = parse_key_file(table("a", "k1") + table("b", "k2", '["kospi-surge"]', '["rankings", "metrics"]'), "f")
    keys = [ApiKey.from_spec(s) for s in specs]
    assert keys[0].feeds is None and keys[0].may_read("anything")
    assert keys[1].may_read("kospi-surge") and not keys[1].may_read("kosdaq-surge")
    assert keys[1].scopes == {Scope.RANKINGS, Scope.METRICS}
    metrics_only = ApiKey.from_spec(KeySpec(name="m", sha256=sha("x"), scopes=[Scope.METRICS]))
    assert not metrics_only.may_read("kospi-surge")


@pytest.mark.parametrize(("text", "says"), [
    ("[[keys]\n", "not valid TOML"),
    ('[[keys]]\nname = "a"\nsha256 = "abc"\n', "keys #1: sha256"),
    (table("a", "k") + table("a", "j"), "duplicate key names ['a']"),
    (table("a", "k", scopes='["admin"]'), "keys #1: scopes.0"),
    (table("a", "k").replace("feeds", "feedz"), "keys #1: feedz"),
    ("[other]\nx = 1\n", "unknown top-level entries ['other']"),
])
def test_bad_key_files_say_where_and_why(text: str, says: str) -> None:
    with pytest.raises(KeyFileError) as info:
        parse_key_file(text, "keys.toml")
    assert str(info.value).startswith("keys.toml: ") and says.replace("keys #", "key #") in str(info.value)


def test_store_rereads_a_changed_file_and_keeps_old_keys_when_the_new_one_is_bad(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "keys.toml"
    write(path, table("old", "kc_old"))
    store = KeyStore(path=path, reload_s=3600)
    assert store.lookup(b"kc_old") is not None and store.lookup(b"kc_new") is None

    write(path, table("new", "kc_new"))
    store.refresh()
    assert store.lookup(b"kc_new") is not None and store.lookup(b"kc_old") is None  # rotated and revoked

    with caplog.at_level(logging.ERROR, logger="api.auth"):
        write(path, "[[keys]\nbroken")
        store.refresh()
        assert store.lookup(b"kc_new") is not None  # a bad edit loses nothing
        path.unlink()
        store.refresh()
        assert store.lookup(b"kc_new") is not None
    assert "not valid TOML" in caplog.text and "unreadable" in caplog.text

    write(path, table("back", "kc_back"))
    store.refresh()
    assert store.lookup(b"kc_back") is not None and len(store) == 1


def test_store_refuses_an_unusable_file_at_start(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="No such file"):
        KeyStore(path=tmp_path / "missing.toml")
    clash = tmp_path / "clash.toml"
    clash.write_text(table("ops", "kc_a"))
    with pytest.raises(KeyFileError, match=r"\['ops'\] are also in KIWOOM_API_AUTH_KEYS"):
        KeyStore([KeySpec(name="ops", sha256=sha("kc_b"))], clash)


def test_settings_keys_from_env_and_cors_wildcard_refused_with_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIWOOM_API_AUTH_KEYS", f'[{{"name": "ci", "sha256": "{sha("kc_ci")}", "feeds": ["a"]}}]')
    settings = ApiSettings()
    assert settings.auth_enabled and settings.auth_keys[0].feeds == ["a"] and "auth=on" in repr(settings)
    assert KeyStore(settings.auth_keys).lookup(b"kc_ci") == ApiKey("ci", frozenset({"a"}), frozenset({Scope.RANKINGS}))
    with pytest.raises(ValidationError, match="explicit list of origins"):
        ApiSettings(cors_origins="*")
    monkeypatch.delenv("KIWOOM_API_AUTH_KEYS")
    assert not ApiSettings(cors_origins="*").auth_enabled


def test_presented_key_header_then_cookie() -> None:
    assert presented_key([(b"authorization", b"Bearer kc_1")]) == b"kc_1"
    assert presented_key([(b"authorization", b"bearer  kc_1 ")]) == b"kc_1"
    assert presented_key([(b"cookie", b"a=b; kiwoom_key=kc_2; c=d")]) == b"kc_2"
    # the header wins; another scheme matches nothing rather than falling back to the cookie
    assert presented_key([(b"cookie", b"kiwoom_key=kc_2"), (b"authorization", b"Bearer kc_1")]) == b"kc_1"
    assert presented_key([(b"authorization", b"Basic eDp5"), (b"cookie", b"kiwoom_key=kc_2")]) == b""
    assert presented_key([(b"cookie", b"other=1")]) is None and presented_key([]) is None


def test_paths_and_what_they_need() -> None:
    assert need_of("/v1/rankings/kospi-surge") == (Need.FEED, "kospi-surge")
    assert need_of("/v1/rankings/kospi-surge/events") == (Need.FEED, "kospi-surge")
    assert need_of("/v1/rankings/kospi-surge/history") == (Need.FEED, "kospi-surge")
    assert need_of("/metrics")[0] is Need.METRICS
    assert need_of("/openapi.json")[0] is need_of("/docs")[0] is Need.DOCS
    assert need_of("/")[0] is Need.PAGE
    assert {need_of(p)[0] for p in ("/healthz", "/readyz", "/login", "/static/app.js")} == {Need.PUBLIC}
    assert {need_of(p)[0] for p in ("/v1/feeds", "/nope", "/v1/rankings")} == {Need.KEY}


def test_login_redirects_stay_on_this_site() -> None:
    assert safe_next("/#kospi-surge") == "/#kospi-surge" and safe_next("/docs") == "/docs"
    for bad in ("//evil.example/", "/\\evil.example", "https://evil.example/", "", "/" + "a" * 3000):
        assert safe_next(bad) == "/"


def test_clip_marks_what_it_cut() -> None:
    assert clip("short") == "short"
    assert clip("x" * 100_000) == "x" * 64 + "… (100000 chars)"


def test_cli_new_appends_a_table_that_the_store_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, key_out = tmp_path / "keys.toml", tmp_path / "dash.key"
    assert auth.main(["new", "--name", "dash", "--feeds", "kospi-surge", "--append", str(path)]) == 0
    key = capsys.readouterr().err.rsplit(" ", 1)[1].strip()
    assert key.startswith("kc_") and len(key) == 46 and key not in path.read_text()
    assert auth.main(["new", "--name", "ops", "--scopes", "metrics,docs", "--append", str(path),
                      "--key-out", str(key_out)]) == 0
    assert key_out.stat().st_mode & 0o777 == 0o600
    store = KeyStore(path=path)
    assert store.lookup(key.encode()) == ApiKey("dash", frozenset({"kospi-surge"}), frozenset({Scope.RANKINGS}))
    ops = store.lookup(key_out.read_text().strip().encode())
    assert ops is not None and ops.scopes == {Scope.METRICS, Scope.DOCS}
    # a name already in the file is refused and the file is left as it was
    before = path.read_text()
    assert auth.main(["new", "--name", "dash", "--append", str(path)]) == 1
    assert path.read_text() == before and "duplicate key names" in capsys.readouterr().err
    assert auth.main(["new", "--name", "x", "--scopes", "admin"]) == 2
    assert auth.main(["check", str(path)]) == 0 and "ops: feeds *; scopes metrics,docs" in capsys.readouterr().out
