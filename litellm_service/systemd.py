"""The two jobs as systemd --user units: rendered from launchd/systemd/*.service.in, loaded with systemctl."""

import os
from pathlib import Path
from string import Template

from litellm_service import stack
from litellm_service.service import Job, JobStatus, ServiceError, Settings, run_tool, template

UNIT_PREFIX = "stabilizer-"
SHOWN_PROPERTIES = ("LoadState", "UnitFileState", "ActiveState", "MainPID", "ExecMainStatus")


def quote_argument(argument: str) -> str:
    """One ExecStart= word: systemd unquotes and unescapes it, and expands % and $ unless doubled."""
    escaped = (
        argument.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("%", "%%").replace("$", "$$")
    )
    return f'"{escaped}"'


def path_value(path: Path) -> str:
    """A path setting (WorkingDirectory=, append:): taken literally except for % specifiers."""
    text = str(path)
    if any(ord(char) < 32 for char in text):
        raise ServiceError(f"{text!r}: a path with control characters cannot go into a unit file")
    return text.replace("%", "%%")


def unit_text(job: Job, template_text: str) -> str:
    """The template without its own comments, filled in."""
    body = "".join(line for line in template_text.splitlines(keepends=True) if not line.startswith("#"))
    values = {
        "command": " ".join(quote_argument(argument) for argument in job.command),
        "project_root": path_value(stack.PROJECT_ROOT),
        "output": path_value(job.output),
    }
    return Template(body).substitute(values)


def show_fields(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


class Systemd:
    name = "systemd"
    tool = "systemctl"
    missing_hint = (
        "On macOS use `stabilizer launchd install`; elsewhere keep `stabilizer run` alive with your own "
        "supervisor. `stabilizer systemd print` still shows the units."
    )

    def job_id(self, job_name: str) -> str:
        return f"{UNIT_PREFIX}{job_name}.service"

    def job_file(self, job_name: str) -> Path:
        config_home = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
        return Path(config_home) / "systemd" / "user" / self.job_id(job_name)

    def render(self, job: Job, settings: Settings) -> str:
        name = f"systemd/{job.name}.service.in"
        try:
            text = unit_text(job, template(name))
        except (KeyError, ValueError) as e:
            raise ServiceError(
                f"launchd/{name}: bad placeholder {e}; use ${{command}}, ${{project_root}}, ${{output}}"
            ) from None
        return f"# Written by `stabilizer systemd install` from launchd/{name}.\n{text}"

    def _systemctl(self, *arguments: str):
        try:
            return run_tool([self.tool, "--user", *arguments])
        except ServiceError as e:
            if "bus" in str(e).lower():  # no systemd --user instance for this login
                raise ServiceError(
                    f"{e}. Is this a login session? `loginctl enable-linger $USER` keeps a user manager running"
                ) from None
            raise

    def files_changed(self) -> None:
        self._systemctl("daemon-reload")

    def activate(self, job_names: list[str]) -> None:
        units = [self.job_id(name) for name in job_names]
        self._systemctl("enable", *units)
        # restart, not start: a reinstall must replace jobs that run an older unit.
        self._systemctl("restart", *units)

    def deactivate(self, job_names: list[str]) -> None:
        units = [self.job_id(name) for name in job_names if self.job_file(name).exists()]
        if units:
            self._systemctl("disable", "--now", *units)

    def status(self, job_name: str) -> JobStatus:
        installed = self.job_file(job_name).exists()
        # An unknown unit is no error here (LoadState=not-found); no user manager is.
        shown = self._systemctl("show", *(f"--property={p}" for p in SHOWN_PROPERTIES), self.job_id(job_name))
        fields = show_fields(shown.stdout)
        pid = fields.get("MainPID", "0")
        return JobStatus(
            installed=installed,
            loaded=fields.get("LoadState") == "loaded" and fields.get("UnitFileState") == "enabled",
            running=fields.get("ActiveState") == "active",
            pid=int(pid) if pid.isdigit() and pid != "0" else None,
            last_exit=fields.get("ExecMainStatus") if fields.get("ActiveState") != "active" else None,
        )
