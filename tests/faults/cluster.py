"""A PostgreSQL cluster the fault tests own: initdb, start, restart, stop, and a streaming
replica made with ``pg_basebackup -R``. Server binaries refuse to run as root, so they
run as the ``postgres`` user then."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from tests.pg_server import free_port


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


@dataclass
class Cluster:
    bindir: str
    workdir: str
    datadir: str
    port: int

    @property
    def prefix(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.prefix, f"{self.bindir}/pg_ctl", "-D", self.datadir, *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        self.ctl(
            "-w",
            "-l",
            os.path.join(self.workdir, f"log-{self.port}"),
            "-o",
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self.ctl("-w", "-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    @classmethod
    def create(cls) -> Cluster | None:
        bindir = _bindir()
        if bindir is None:
            return None
        workdir = tempfile.mkdtemp(prefix="aragora-fault-")
        if os.geteuid() == 0:
            shutil.chown(workdir, "postgres")
        cluster = cls(bindir, workdir, os.path.join(workdir, "primary"), free_port())
        subprocess.run(
            [
                *cluster.prefix,
                f"{bindir}/initdb",
                "-D",
                cluster.datadir,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--locale=C.UTF-8",  # text in code-point order, as the runtime requires
            ],
            check=True,
            capture_output=True,
        )
        with open(os.path.join(cluster.datadir, "postgresql.conf"), "a") as f:
            f.write("fsync = off\nwal_level = replica\nmax_wal_senders = 5\n")
        cluster.start()
        return cluster

    def replica(self) -> Cluster:
        """A hot standby streaming from this cluster, on its own port."""
        replica = Cluster(
            self.bindir,
            self.workdir,
            os.path.join(self.workdir, f"replica-{free_port()}"),
            free_port(),
        )
        subprocess.run(
            [
                *self.prefix,
                f"{self.bindir}/pg_basebackup",
                "-D",
                replica.datadir,
                "-R",
                "-X",
                "stream",
                "-d",
                f"host=127.0.0.1 port={self.port} user=postgres",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        replica.start()
        return replica

    def destroy(self) -> None:
        for data in glob.glob(os.path.join(self.workdir, "*")):
            if os.path.isdir(data) and os.path.exists(os.path.join(data, "postmaster.pid")):
                subprocess.run(
                    [*self.prefix, f"{self.bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                    check=False,
                    capture_output=True,
                )
        shutil.rmtree(self.workdir, ignore_errors=True)
