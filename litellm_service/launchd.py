"""The two jobs as macOS LaunchAgents: plists rendered from launchd/*.plist.in, loaded with launchctl."""

import os
import plistlib
import re
import time
from pathlib import Path
from string import Template

from litellm_service import stack
from litellm_service.service import Job, JobStatus, ServiceError, Settings, run_tool, template

LABEL_PREFIX = "dev.stabilizer"
COMMAND_PLACEHOLDER = "${command}"
UNLOAD_TIMEOUT_SECONDS = 10.0
# `launchctl print` lists a job's own fields one tab deep; deeper lines belong to nested blocks.
PRINT_FIELD = re.compile(r"^\t(?P<key>[a-z][a-z ]*?) = (?P<value>.*)$")


def fill(value, values: dict[str, str], command: tuple[str, ...]):
    """The template with ${name} strings filled in; an array element `${command}` becomes the command."""
    if isinstance(value, str):
        return Template(value).substitute(values)
    if isinstance(value, list):
        filled: list[object] = []
        for item in value:
            if item == COMMAND_PLACEHOLDER:
                filled.extend(command)
            else:
                filled.append(fill(item, values, command))
        return filled
    if isinstance(value, dict):
        return {key: fill(item, values, command) for key, item in value.items()}
    return value


def plist_for(job: Job, label: str) -> dict:
    name = f"{job.name}.plist.in"
    values = {"label": label, "project_root": str(stack.PROJECT_ROOT), "output": str(job.output)}
    try:
        return fill(plistlib.loads(template(name).encode()), values, job.command)
    except (KeyError, ValueError) as e:
        raise ServiceError(
            f"launchd/{name}: bad placeholder {e}; use ${{label}}, ${{project_root}}, ${{output}}, ${{command}}"
        ) from None


def print_fields(output: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in output.splitlines():
        if match := PRINT_FIELD.match(line):
            fields.setdefault(match["key"], match["value"].strip())
    return fields


class Launchd:
    name = "launchd"
    tool = "launchctl"
    missing_hint = (
        "launchd is macOS's service manager; on Linux use `stabilizer systemd install` (systemd --user units). "
        "`stabilizer launchd print` still shows the plists."
    )

    @property
    def domain(self) -> str:
        return f"gui/{os.getuid()}"

    def job_id(self, job_name: str) -> str:
        return f"{LABEL_PREFIX}.{job_name}"

    def job_file(self, job_name: str) -> Path:
        return Path.home() / "Library" / "LaunchAgents" / f"{self.job_id(job_name)}.plist"

    def render(self, job: Job, settings: Settings) -> str:
        return plistlib.dumps(plist_for(job, self.job_id(job.name)), sort_keys=False).decode()

    def files_changed(self) -> None:
        """launchd reads a plist when it is bootstrapped; nothing to reload."""

    def _print(self, job_name: str):
        return run_tool([self.tool, "print", f"{self.domain}/{self.job_id(job_name)}"], check=False)

    def _bootout(self, job_name: str) -> None:
        if self._print(job_name).returncode != 0:
            return
        run_tool([self.tool, "bootout", f"{self.domain}/{self.job_id(job_name)}"], check=False)
        # bootout may return before the job is gone, and bootstrapping it again
        # meanwhile fails with "Input/output error".
        deadline = time.monotonic() + UNLOAD_TIMEOUT_SECONDS
        while self._print(job_name).returncode == 0:
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{self.job_id(job_name)} is still loaded {UNLOAD_TIMEOUT_SECONDS:.0f} s after bootout"
                )
            time.sleep(0.1)

    def activate(self, job_names: list[str]) -> None:
        for name in job_names:
            self._bootout(name)  # an earlier version of the job
            run_tool([self.tool, "bootstrap", self.domain, str(self.job_file(name))])

    def deactivate(self, job_names: list[str]) -> None:
        for name in job_names:
            self._bootout(name)

    def status(self, job_name: str) -> JobStatus:
        installed = self.job_file(job_name).exists()
        result = self._print(job_name)
        if result.returncode != 0:
            return JobStatus(installed=installed, loaded=False)
        fields = print_fields(result.stdout)
        pid = fields.get("pid", "")
        last_exit = fields.get("last exit code")
        return JobStatus(
            installed=installed,
            loaded=True,
            running=fields.get("state") == "running",
            pid=int(pid) if pid.isdigit() else None,
            last_exit=None if last_exit in (None, "(never exited)") else last_exit,
        )
