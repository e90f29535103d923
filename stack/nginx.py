"""Run nginx (Debian's) as an unprivileged child in a data dir, balancing the local API replicas."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stack.launch import spawn

ROOT = Path(__file__).resolve().parent.parent
PROXY_CONF = ROOT / "deploy" / "nginx-proxy.conf"


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


@dataclass(frozen=True)
class ByName:
    """Replicas found by DNS, as compose's nginx finds them (deploy/nginx.conf): ``name:port``, resolved again
    through the DNS server at ``dns`` whenever the last answer is older than ``valid_s``."""

    name: str
    port: int
    dns: str
    valid_s: int = 1


def render(workdir: Path, listen: int, backends: list[int] | ByName) -> Path:
    """Write nginx.conf under ``workdir`` (pid, logs and temp files stay there too). ``backends``: the replicas'
    ports on 127.0.0.1 (a fixed upstream, the local demo), or :class:`ByName`."""
    tmp = workdir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    temp = "\n".join(f"    {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                           "scgi"))
    if isinstance(backends, ByName):
        upstream = (f"    resolver {backends.dns} valid={backends.valid_s}s ipv6=off;\n"
                    f"    resolver_timeout 2s;")
        target = f"set $kiwoom_api http://{backends.name}:{backends.port};\n            proxy_pass $kiwoom_api;"
    else:
        servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;" for port in backends)
        upstream = f"    upstream kiwoom_api {{\n{servers}\n        keepalive 32;\n    }}"
        target = "proxy_pass http://kiwoom_api;"
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
{upstream}
    server {{
        listen 127.0.0.1:{listen};
        # The same request size limits as deploy/nginx.conf and the replicas (api/gate.py).
        large_client_header_buffers 4 8k;
        client_max_body_size 4k;
        location = /nginx-health {{ return 200 "ok\\n"; }}
        location / {{
            {target}
            include {PROXY_CONF};
        }}
    }}
}}
""", encoding="utf-8")
    return conf


def start(workdir: Path, listen: int, backends: list[int] | ByName, log: Path) -> subprocess.Popen[bytes]:
    nginx = find_nginx()
    if nginx is None:
        raise FileNotFoundError("nginx is not installed")
    conf = render(workdir, listen, backends)
    check = subprocess.run([nginx, "-t", "-q", "-p", str(workdir), "-c", str(conf)], capture_output=True, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"nginx rejected {conf}: {check.stderr.decode(errors='replace')}")
    return spawn([nginx, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"], log=log)
