"""Debian's nginx in front of a test's gunicorn, configured by the repository's own
deploy/nginx/paybridge.conf: its ${PAYBRIDGE_…} names filled in (free ports, a self-signed
certificate for 127.0.0.1) and included in a small main configuration of the test's own, so
nothing of the machine's nginx is used or touched."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
import trustme

from tests.support.gunicorn import ROOT, free_port
from tests.support.processes import stop_process
from tests.support.waiting import wait_until

NGINX = "/usr/sbin/nginx"  # Debian's package; scripts/setup.sh installs it
TEMPLATE = ROOT / "deploy" / "nginx" / "paybridge.conf"
DEBIAN_MAIN_CONFIG = Path("/etc/nginx/nginx.conf")


def render_site(values: dict[str, str]) -> str:
    """The template with every ${PAYBRIDGE_…} name replaced, as envsubst does in the recipe."""
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    left = sorted(set(re.findall(r"\$\{PAYBRIDGE_[A-Z_]+\}", text)))
    assert not left, f"the template names settings the test did not fill in: {left}"
    return text


def tls_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """nginx's certificate for 127.0.0.1 and localhost, its key, and the throwaway CA (trustme)
    a client verifies it with."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    ca_path = directory / "ca.crt"
    for number, pem in enumerate(issued.cert_chain_pems):
        pem.write_to_path(str(cert_path), append=number > 0)
    issued.private_key_pem.write_to_path(str(key_path))
    ca.cert_pem.write_to_path(str(ca_path))
    return cert_path, key_path, ca_path


def site_values(upstream: str, cert: Path, key: Path) -> dict[str, str]:
    return {
        "PAYBRIDGE_SERVER_NAME": "127.0.0.1",
        "PAYBRIDGE_UPSTREAM": upstream,
        "PAYBRIDGE_HTTP_PORT": f"127.0.0.1:{free_port()}",
        "PAYBRIDGE_HTTPS_PORT": f"127.0.0.1:{free_port()}",
        "PAYBRIDGE_TLS_CERTIFICATE": str(cert),
        "PAYBRIDGE_TLS_CERTIFICATE_KEY": str(key),
    }


def main_config(workdir: Path, site: Path) -> str:
    """What Debian's /etc/nginx/nginx.conf is to the real site, for one test: every file nginx
    writes in `workdir`, in the foreground, one worker process."""
    # Run as root (the suite's machines), nginx would hand the connections to `nobody`, who
    # cannot write the temporary files in `workdir`: keep them with the test's own user.
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = " ".join(f"{kind}_temp_path {workdir / kind};" for kind in kinds)
    return f"""
daemon off;
master_process on;
worker_processes 1;
{user}
error_log {workdir}/error.log info;
pid {workdir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log {workdir}/access.log;
    {temp}
    include {site};
}}
"""


@dataclass
class RunningNginx:
    url: str  # https://127.0.0.1:port
    port: int
    http_port: int  # the plain-HTTP server's (a redirect to HTTPS)
    ca: Path  # verify TLS with this (requests' verify=)
    workdir: Path

    def error_log(self) -> str:
        return (self.workdir / "error.log").read_text(errors="replace")


@contextmanager
def running_nginx(upstream: str) -> Iterator[RunningNginx]:
    """nginx with the repository's site in front of `upstream` (host:port of gunicorn); yields
    once https /healthz answers through it."""
    workdir = Path(tempfile.mkdtemp(prefix="paybridge-nginx-"))
    try:
        cert, key, ca = tls_certificate(workdir)
        values = site_values(upstream, cert, key)
        site = workdir / "paybridge.conf"
        site.write_text(render_site(values))
        config = workdir / "nginx.conf"
        config.write_text(main_config(workdir, site))
        command = [NGINX, "-p", str(workdir), "-c", str(config), "-e", str(workdir / "error.log")]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        port = int(values["PAYBRIDGE_HTTPS_PORT"].rsplit(":", 1)[1])
        http_port = int(values["PAYBRIDGE_HTTP_PORT"].rsplit(":", 1)[1])
        running = RunningNginx(f"https://127.0.0.1:{port}", port, http_port, ca, workdir)

        def answering() -> bool:
            assert proc.poll() is None, f"nginx exited:\n{running.error_log()}"
            try:
                return requests.get(f"{running.url}/healthz", verify=str(ca), timeout=3).ok
            except requests.RequestException:
                return False

        try:
            wait_until(answering, what="nginx answering /healthz", timeout=30, interval=0.1)
            yield running
        finally:
            stop_process(proc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def check_inside_debians_config(site_text: str, workdir: Path) -> subprocess.CompletedProcess:
    """`nginx -t` of the rendered site where the recipe puts it: inside Debian's own http { }
    block (sites-enabled), so a directive that repeats one of nginx.conf's shows up."""
    site = workdir / "paybridge.conf"
    site.write_text(site_text)
    main = DEBIAN_MAIN_CONFIG.read_text()
    assert "include /etc/nginx/sites-enabled/*;" in main, "Debian's nginx.conf changed shape"
    config = workdir / "nginx.conf"
    config.write_text(main.replace("include /etc/nginx/sites-enabled/*;", f"include {site};"))
    return subprocess.run(
        [NGINX, "-t", "-c", str(config), "-e", str(workdir / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
