"""Run nginx (Debian's) as an unprivileged child in a data dir, balancing the local API replicas."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from stack.launch import spawn

ROOT = Path(__file__).resolve().parent.parent
PROXY_CONF = ROOT / "deploy" / "nginx-proxy.conf"


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def render(workdir: Path, listen: int, backends: list[int]) -> Path:
    """Write nginx.conf under ``workdir`` (pid, logs and temp files stay there too)."""
    tmp = workdir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;" for port in backends)
    temp = "\n".join(f"    {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                           "scgi"))
    conf = workdir / "nginx.conf"
    conf.write_text(f"""worker_processes 1;
pid {workdir / 'nginx.pid'};
error_log {workdir / 'error.log'} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
{temp}
    # WebSocket upgrades (deploy/nginx-proxy.conf): Connection "upgrade" only when the client asks for one.
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}
    upstream kiwoom_api {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{listen};
        # The same request size limits as deploy/nginx.conf and the replicas (api/gate.py).
        large_client_header_buffers 4 8k;
        client_max_body_size 4k;
        location = /nginx-health {{ return 200 "ok\\n"; }}
        location / {{
            include {PROXY_CONF};
        }}
    }}
}}
""", encoding="utf-8")
    return conf


def start(workdir: Path, listen: int, backends: list[int], log: Path) -> subprocess.Popen[bytes]:
    nginx = find_nginx()
    if nginx is None:
        raise FileNotFoundError("nginx is not installed")
    conf = render(workdir, listen, backends)
    check = subprocess.run([nginx, "-t", "-q", "-p", str(workdir), "-c", str(conf)], capture_output=True, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"nginx rejected {conf}: {check.stderr.decode(errors='replace')}")
    return spawn([nginx, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"], log=log)
