"""compose.yml, the Dockerfile and the nginx configs hold together (no Docker daemon needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from api.settings import ApiSettings
from kiwoom_cache.env import env_names
from publisher.settings import PublisherSettings
from stack import nginx

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yml").read_text(encoding="utf-8"))
SETTINGS = {"api": ApiSettings, "publisher": PublisherSettings}


def test_services_and_topology() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"redis", "publisher", "api", "nginx"}
    assert services["api"]["deploy"]["replicas"] == 3
    assert "ports" not in services["api"], "replicas are reached through nginx only"
    assert services["nginx"]["ports"] == ["8080:8080"]
    assert all("healthcheck" in s for s in services.values())
    assert "--appendonly" in services["redis"]["command"], "Redis persistence on"
    assert services["nginx"]["depends_on"]["api"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", ["api", "publisher"])
def test_env_vars_are_real_settings(service: str) -> None:
    """A typo in compose's variable names would be silently ignored at run time."""
    names = env_names(SETTINGS[service])
    for name in COMPOSE["services"][service]["environment"]:
        assert name in names, name


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


def test_proxy_conf_keeps_sse_streaming() -> None:
    proxy = (ROOT / "deploy" / "nginx-proxy.conf").read_text(encoding="utf-8")
    for directive in ("proxy_buffering off;", "proxy_read_timeout 1h;", "proxy_http_version 1.1;",
                      'proxy_set_header Connection "";', "proxy_next_upstream error timeout"):
        assert directive in proxy


@pytest.mark.skipif(nginx.find_nginx() is None, reason="nginx not installed")
def test_local_nginx_config_is_valid(tmp_path: Path) -> None:
    conf = nginx.render(tmp_path, 18080, [18001, 18002])
    result = subprocess.run([nginx.find_nginx() or "nginx", "-t", "-p", str(tmp_path), "-c", str(conf)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI not installed")
def test_docker_compose_config_when_available() -> None:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("docker compose plugin not installed; the YAML checks above still ran")
    result = subprocess.run(["docker", "compose", "-f", str(ROOT / "compose.yml"), "config", "-q"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
