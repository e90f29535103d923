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
from kiwoom_cache.connect import sync_client
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
    assert set(services) == {"secrets", "redis", "publisher", "publisher-rest", "publisher-standby", "api", "nginx",
                             "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"}
    assert services["publisher-rest"]["profiles"] == ["rest"], "the REST publisher starts only when asked for"
    assert services["publisher-standby"]["profiles"] == ["standby"], "the standby starts only when asked for"
    assert services["publisher-standby"]["environment"]["KIWOOM_PUBLISHER_STANDBY_LOGIN"] == "cold"
    assert "kiwoom-publisher --source rest" in services["publisher-rest"]["command"][-1]
    assert services["api"]["deploy"]["replicas"] == 3
    assert "ports" not in services["api"], "replicas are reached through nginx only"
    assert services["nginx"]["ports"] == ["8080:8080", "8443:8443"]
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
    for redis_node in ("redis", "redis-replica"):
        command = services[redis_node]["command"]
        assert command[:4] == ["redis-server", "/secrets/replica.conf", "--aclfile", "/secrets/users.acl"]
    assert "redis-users.acl" in services["secrets"]["command"][-1]
    assert "/secrets/publisher.env" in services["publisher"]["command"][-1]
    assert "/secrets/publisher.env" in services["publisher-rest"]["command"][-1]
    assert "/secrets/publisher.env" in services["publisher-standby"]["command"][-1]
    assert "/secrets/api.env" in services["api"]["command"][-1]
    assert services["api"]["environment"]["KIWOOM_API_AUTH_KEYS_FILE"] == "/secrets/api-keys.toml"
    for service in ("api", "publisher", "publisher-rest", "publisher-standby", "redis", "redis-replica", "sentinel-1",
                    "nginx"):
        assert "secrets:/secrets:ro" in services[service]["volumes"], service
        assert "KIWOOM_CACHE_REDIS_URL" not in services[service].get("environment", {}), service
    acl = (ROOT / "deploy" / "redis-users.acl").read_text().splitlines()
    assert [line.split()[1] for line in acl if line.startswith("user ")] == [
        "default", "kiwoom-publisher", "kiwoom-api", "kiwoom-replica", "kiwoom-sentinel", "kiwoom-admin"]


def test_mounted_and_copied_files_exist() -> None:
    for volume in COMPOSE["services"]["nginx"]["volumes"]:
        source = volume.split(":")[0]
        assert source in COMPOSE["volumes"] or (ROOT / source).is_file(), source
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


def run_secrets_service(directory: Path, times: int = 1) -> None:
    """Run the one-shot ``secrets`` command itself, its paths moved into ``directory``."""
    command = COMPOSE["services"]["secrets"]["command"][-1]
    command = command.replace("/secrets", str(directory)).replace("/app/", f"{ROOT}/") \
        .replace("python -m", f"{sys.executable} -m")
    for _ in range(times):
        subprocess.run(["sh", "-c", command], cwd=ROOT, check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_secrets_service_command_prepares_users_and_a_dashboard_key(tmp_path: Path) -> None:
    """Run the one-shot ``secrets`` command itself (paths moved into tmp) and use what it wrote."""
    run_secrets_service(tmp_path, times=2)  # the second run keeps the passwords and the key
    assert (tmp_path / "tls.crt").is_file() and (tmp_path / "tls.key").is_file(), "nginx's certificate"
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


def test_sentinel_profile_switches_both_sides_to_a_sentinel_url() -> None:
    services = COMPOSE["services"]
    for name in ("redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"):
        assert services[name]["profiles"] == ["sentinel"], name
    assert "--replicaof" in services["redis-replica"]["command"]
    assert services["sentinel-1"]["command"][-1].endswith("--sentinel")
    assert services["sentinel-1"] == services["sentinel-2"] == services["sentinel-3"]
    assert "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379" in services["secrets"]["command"][-1]
    for name, role in (("publisher", "publisher"), ("publisher-standby", "publisher"),
                       ("publisher-rest", "publisher"), ("api", "api")):
        command = services[name]["command"][-1]
        # compose interpolates COMPOSE_PROFILES (the variable that also turns the profile on) into the command
        assert f"case ,${{COMPOSE_PROFILES:-}}, in *,sentinel,*) . /secrets/{role}.sentinel.env ;; esac" in command
        for n in (1, 2, 3):
            assert services[name]["depends_on"][f"sentinel-{n}"] == {"condition": "service_healthy",
                                                                    "required": False}, name


def test_sentinel_profile_files_run_a_primary_a_replica_and_a_sentinel(tmp_path: Path) -> None:
    """What the secrets service writes for the profile works: the replica logs in with replica.conf, the
    sentinel (with sentinel.conf) watches the primary and finds the replica, and the API's Sentinel URL reads."""
    run_secrets_service(tmp_path / "secrets")
    secrets = tmp_path / "secrets"
    # A config file must come first on redis-server's command line, where LocalRedis puts its own options: the
    # file's lines (``masteruser U``, ``masterauth P``) are passed as the same options instead.
    auth = [arg for line in (secrets / "replica.conf").read_text().splitlines()
            for arg in (f"--{line.split()[0]}", line.split()[1])]
    primary = LocalRedis(tmp_path / "primary", aclfile=secrets / "users.acl", args=auth)
    with primary:
        replica = LocalRedis(tmp_path / "replica", aclfile=secrets / "users.acl",
                             args=[*auth, "--replicaof", "127.0.0.1", str(primary.port)])
        sentinel_dir = tmp_path / "sentinel"
        sentinel_dir.mkdir()
        sentinel_port = free_port()
        conf = (secrets / "sentinel.conf").read_text().replace(" redis 6379 ", f" 127.0.0.1 {primary.port} ")
        (sentinel_dir / "sentinel.conf").write_text(f"port {sentinel_port}\nbind 127.0.0.1\ndir {sentinel_dir}\n{conf}")
        with replica:
            sentinel = subprocess.Popen([primary.executable, str(sentinel_dir / "sentinel.conf"), "--sentinel"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                def group_seen() -> bool:
                    with redis.Redis(port=sentinel_port, socket_timeout=1) as client:
                        master = client.sentinel_master("kiwoom")
                    return master["flags"] == "master" and int(master["num-slaves"]) == 1
                wait_until(group_seen, 30, "the sentinel logged in to the primary and found the replica")
                env = dict(line.split("=", 1) for line in (secrets / "api.sentinel.env").read_text().splitlines())
                url = env["KIWOOM_CACHE_REDIS_URL"].replace(
                    "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379", f"127.0.0.1:{sentinel_port}")
                with sync_client(url, socket_timeout=2) as api:
                    assert api.xrange("kiwoom:{kospi-surge}:history") == []
            finally:
                sentinel.terminate()
                sentinel.wait(10)


def deploy_nginx_conf(tmp_path: Path, port: int, tls_port: int, secrets: Path) -> Path:
    """deploy/nginx.conf as compose mounts it, with its container paths and ports moved to ``tmp_path``."""
    text = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    text = (text.replace("/etc/nginx/kiwoom-proxy.conf", str(ROOT / "deploy" / "nginx-proxy.conf"))
            .replace("/secrets/", f"{secrets}/").replace("listen 8080;", f"listen 127.0.0.1:{port};")
            .replace("listen 8443 ", f"listen 127.0.0.1:{tls_port} ")
            .replace("worker_processes auto;", "worker_processes 1;")
            .replace("worker_connections 32768;", "worker_connections 64;").replace("worker_rlimit_nofile 65536;", ""))
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'} warn;\n{text}",
                    encoding="utf-8")
    return conf


@needs(Tool.NGINX)
def test_compose_nginx_serves_http2_over_tls_with_the_generated_certificate(tmp_path: Path) -> None:
    """The shipped deploy/nginx.conf, run by the local nginx with the certificate the secrets service makes:
    HTTP/2 over TLS (curl --http2, trusting that certificate) and plain HTTP/1.1 on the other port."""
    run_secrets_service(tmp_path / "secrets")
    port, tls_port = free_port(), free_port()
    conf = deploy_nginx_conf(tmp_path, port, tls_port, tmp_path / "secrets")
    binary = nginx.find_nginx() or "nginx"
    checked = subprocess.run([binary, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True,
                             check=False)
    assert checked.returncode == 0, checked.stderr
    proc = subprocess.Popen([binary, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/nginx-health").status_code == 200, 10, "nginx up")
        out = subprocess.run(["curl", "-sS", "--http2", "--cacert", str(tmp_path / "secrets" / "tls.crt"),
                              "--resolve", f"localhost:{tls_port}:127.0.0.1", "-o", "/dev/null", "-w",
                              "%{http_version} %{http_code}", f"https://localhost:{tls_port}/nginx-health"],
                             capture_output=True, text=True, check=False, timeout=20)
        assert out.stdout == "2 200", out.stderr
    finally:
        proc.terminate()
        proc.wait(10)
