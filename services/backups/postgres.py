"""PostgreSQL's own tools for native backups: pg_dump writes a database or schema as SQL (from the
same snapshot the manifest is counted in), psql plays it back in one transaction."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

from sqlalchemy.engine import make_url

from services.errors import Conflict


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise Conflict(f"Native PostgreSQL backups need {name}, which is not installed on this machine.")
    return found


def have_postgres_tools() -> bool:
    return shutil.which("pg_dump") is not None and shutil.which("psql") is not None


def _dsn_and_env(url: str) -> tuple[str, dict[str, str]]:
    server = make_url(url).set(drivername="postgresql")
    environment = {**os.environ, "PGPASSWORD": server.password or ""}
    return server.set(password=None).render_as_string(hide_password=False), environment


async def _run(arguments: list[str], url: str, what: str) -> None:
    dsn, environment = _dsn_and_env(url)
    process = await asyncio.create_subprocess_exec(
        *arguments,
        dsn,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    _, errors = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{what}: {errors.decode(errors='replace').strip()}")


async def pg_dump(url: str, target: Path, *, schema: str | None, snapshot: str | None) -> None:
    """Write the database at `url` (or only `schema` in it) to `target` as an SQL script."""
    arguments = [_tool("pg_dump"), "--no-owner", "--no-privileges", "--format=plain", f"--file={target}"]
    if schema:
        arguments.append(f"--schema={schema}")
    if snapshot:
        arguments.append(f"--snapshot={snapshot}")
    await _run(arguments, url, f"pg_dump could not read {schema or make_url(url).database}")


async def psql_script(url: str, script: Path) -> None:
    """Run an SQL script (COPY blocks and all) in one transaction; it stops at the first error."""
    arguments = [
        _tool("psql"),
        "--no-psqlrc",
        "--quiet",
        "--set=ON_ERROR_STOP=1",
        "--single-transaction",
        f"--file={script}",
        "--dbname",
    ]
    await _run(arguments, url, "psql could not restore the dump")


def rename_schema(source: Path, target: Path, old: str, new: str) -> None:
    """Copy a pg_dump script of schema `old` so that it creates schema `new` instead. Only
    statements are rewritten; the rows inside COPY blocks are copied as they are, so data that
    happens to contain the schema's name is left alone."""
    pattern = re.compile(rf"\b{re.escape(old)}\b")
    in_copy = False
    with source.open(encoding="utf-8") as reading, target.open("w", encoding="utf-8") as writing:
        for line in reading:
            if in_copy:
                in_copy = line.rstrip("\n") != "\\."
                writing.write(line)
                continue
            if line.startswith("COPY ") and line.rstrip().endswith("FROM stdin;"):
                in_copy = True
            writing.write(pattern.sub(new, line))
