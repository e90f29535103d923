"""compose.yml, the Dockerfile and the nginx configs hold together (no Docker daemon needed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis
import yaml

from api.auth import KeyStore
from api.settings import ApiSettings
from kiwoom_cache.env import env_names
from publisher.settings import PublisherSettings
from publisher.sources.rest import APPKEY_ENV, SECRETKEY_ENV
from stack import nginx
from stack.localredis import LocalRedis, free_port
from tests.tools import Tool, needs
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yml").read_text(encoding="utf-8"))
SETTINGS = {"api": ApiSettings, "publisher": PublisherSettings, "publisher-rest": PublisherSettings,
            "publisher-standby": PublisherSettings}
#: Read by the REST source from the environment only (never settings fields).
REST_KEYS = {APPKEY_ENV, SECRETKEY_ENV}


def test_services_and_topology() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"secrets", "redis", "publisher", "publisher-rest", "publisher-standby", "api", "nginx"}
    assert services["publisher-rest"]["profiles"] == ["rest"], "the REST publisher starts only when asked for"
    assert services["publisher-standby"]["profiles"] == ["standby"], "the standby starts only when asked for"
    assert services["publisher-standby"]["environment"]["KIWOOM_PUBLISHER_STANDBY_LOGIN"] == "cold"
    assert "kiwoom-publisher --source rest" in services["publisher-rest"]["command"][-1]
    assert services["api"]["deploy"]["replicas"] == 3
    assert "ports" not in services["api"], "replicas are reached through nginx only"
    assert services["nginx"]["ports"] == ["8080:8080"]
    assert all("healthcheck" in s for name, s in services.items() if name != "secrets"), "secrets is one-shot"
    assert "--appendonly" in services["redis"]["command"], "Redis persistence on"
    assert services["redis"]["depends_on"]["secrets"]["condition"] == "service_completed_successfully"
    assert services["nginx"]["depends_on"]["api"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", ["api", "publisher", "publisher-rest", "publisher-standby"])
def test_env_vars_are_real_settings(service: str) -> None:
    """A typo in compose's variable names would be silently ignored at run time."""
    names = env_names(SETTINGS[service]) | (REST_KEYS if service == "publisher-rest" else set())
    for name in COMPOSE["services"][service]["environment"]:
        assert name in names, name


def test_compose_is_secured() -> None:
    """Redis with the shipped ACL and no anonymous user; each process on its own Redis user; API keys on."""
    services = COMPOSE["services"]
    assert services["redis"]["command"][:3] == ["redis-server", "--aclfile", "/secrets/users.acl"]
    assert "redis-users.acl" in services["secrets"]["command"][-1]
    assert "/secrets/publisher.env" in services["publisher"]["command"][-1]
    assert "/secrets/publisher.env" in services["publisher-rest"]["command"][-1]
    assert "/secrets/publisher.env" in services["publisher-standby"]["command"][-1]
    assert "/secrets/api.env" in services["api"]["command"][-1]
    assert services["api"]["environment"]["KIWOOM_API_AUTH_KEYS_FILE"] == "/secrets/api-keys.toml"
    for service in ("api", "publisher", "publisher-rest", "publisher-standby", "redis"):
        assert "secrets:/secrets:ro" in services[service]["volumes"], service
        assert "KIWOOM_CACHE_REDIS_URL" not in services[service].get("environment", {}), service
    acl = (ROOT / "deploy" / "redis-users.acl").read_text().splitlines()
    assert [line.split()[1] for line in acl if line.startswith("user ")] == [
        "default", "kiwoom-publisher", "kiwoom-api", "kiwoom-replica", "kiwoom-sentinel", "kiwoom-admin"]


def test_mounted_and_copied_files_exist() -> None:
    for volume in COMPOSE["services"]["nginx"]["volumes"]:
        source = volume.split(":")[0]
        assert (ROOT / source).is_file(), source
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    nginx_conf = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    assert "include /etc/nginx/kiwoom-proxy.conf;" in nginx_conf


def test_proxy_conf_keeps_sse_streaming_and_passes_websocket_upgrades(tmp_path: Path) -> None:
    proxy = (ROOT / "deploy" / "nginx-proxy.conf").read_text(encoding="utf-8")
    for directive in ("proxy_buffering off;", "proxy_read_timeout 1h;", "proxy_http_version 1.1;",
                      "proxy_set_header Upgrade $http_upgrade;", "proxy_set_header Connection $connection_upgrade;",
                      "proxy_next_upstream error timeout"):
        assert directive in proxy
    # the map the proxy settings rely on, in both http blocks that include them
    for conf in ((ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8"),
                 nginx.render(tmp_path, 18080, [18001]).read_text(encoding="utf-8")):
        assert re.search(r"map \$http_upgrade \$connection_upgrade \{\s*default upgrade;\s*''\s+'';\s*\}", conf)


@needs(Tool.NGINX)
def test_local_nginx_config_is_valid(tmp_path: Path) -> None:
    conf = nginx.render(tmp_path, 18080, [18001, 18002])
    result = subprocess.run([nginx.find_nginx() or "nginx", "-t", "-p", str(tmp_path), "-c", str(conf)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@needs(Tool.DOCKER)
def test_docker_compose_config_when_available() -> None:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("docker compose plugin not installed; the YAML checks above still ran")
    result = subprocess.run(["docker", "compose", "-f", str(ROOT / "compose.yml"), "config", "-q"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_secrets_service_command_prepares_users_and_a_dashboard_key(tmp_path: Path) -> None:
    """Run the one-shot ``secrets`` command itself (paths moved into tmp) and use what it wrote."""
    command = COMPOSE["services"]["secrets"]["command"][-1]
    command = command.replace("/secrets", str(tmp_path)).replace("/app/", f"{ROOT}/") \
        .replace("python -m", f"{sys.executable} -m")
    for _ in range(2):  # the second run keeps the passwords and the key
        subprocess.run(["sh", "-c", command], cwd=ROOT, check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    key = (tmp_path / "dashboard.key").read_text().strip()
    assert KeyStore(path=tmp_path / "api-keys.toml").lookup(key.encode()) is not None
    env = dict(line.split("=", 1) for line in (tmp_path / "api.env").read_text().splitlines())
    api_url = env["KIWOOM_CACHE_REDIS_URL"]
    assert api_url.startswith("redis://kiwoom-api:") and api_url.endswith("@redis:6379/0")
    with LocalRedis(tmp_path / "redis", aclfile=tmp_path / "users.acl") as server:
        client = redis.Redis.from_url(api_url.replace("@redis:6379", f"@127.0.0.1:{server.port}"))
        try:
            assert client.ping() and client.xrange("kiwoom:{kospi-surge}:history") == []
        finally:
            client.close()


@needs(Tool.NGINX)
def test_nginx_enforces_the_stated_size_limits(tmp_path: Path) -> None:
    port = free_port()
    proc = nginx.start(tmp_path / "nginx", port, [free_port()], tmp_path / "nginx.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(base + "/nginx-health").status_code == 200, 10, "nginx up")
        assert httpx.get(base + "/v1/rankings/" + "f" * 9000).status_code == 414
        assert httpx.get(base + "/healthz", headers={"X-Pad": "p" * 9000}).status_code == 400
        assert httpx.post(base + "/login", content=b"k" * 5000).status_code == 413
    finally:
        proc.terminate()
        proc.wait(10)
