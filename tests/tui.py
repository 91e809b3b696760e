"""Claude Code's interactive TUI for the end-to-end tests: in a detached tmux session with a
server of its own, past the first-run screens, read from its pane and typed into. The TUI gives
no signal but its screen, so every wait polls the pane."""

import json
import subprocess
from pathlib import Path

from tests.claude import claude_binary
from tests.procs import poll_until

WIDTH, HEIGHT = 200, 50
SCROLLBACK = "-500"  # lines of history read with the screen: earlier turns scroll off the top


class Terminal:
    def __init__(self, socket: Path, env: dict[str, str], cwd: Path):
        # A server of its own: it takes `env` when it starts, and its stop takes nothing else down.
        self.base = ["tmux", "-S", str(socket)]
        self.env, self.cwd = env, cwd

    def start(self) -> "Terminal":
        """Claude Code started, once it shows its prompt."""
        command = [*self.base, "new-session", "-d", "-x", str(WIDTH), "-y", str(HEIGHT), str(claude_binary())]
        subprocess.run(command, env=self.env, cwd=self.cwd, check=True)
        try:
            self.wait_for("❯")
        except BaseException:
            self.stop()
            raise
        return self

    def screen(self) -> str:
        done = subprocess.run([*self.base, "capture-pane", "-p", "-S", SCROLLBACK], capture_output=True, text=True)
        return done.stdout

    def title(self) -> str:
        """The terminal's title, as the program set it."""
        done = subprocess.run([*self.base, "display-message", "-p", "#{pane_title}"], capture_output=True, text=True)
        return done.stdout

    def wait_for(self, *texts: str, timeout: float = 90) -> str:
        """The screen once it shows one of `texts`; an API error shown instead fails at once."""

        def showing() -> str | None:
            screen = self.screen()
            if any(text in screen for text in texts):
                return screen
            if "API Error" in screen:
                raise AssertionError(f"an API error instead of {texts!r}; the screen:\n{screen}")
            return None

        try:
            return poll_until(showing, timeout, repr(texts), interval=0.3)
        except TimeoutError as e:
            raise AssertionError(f"{e}; the screen:\n{self.screen()}") from None

    def send(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", *keys], check=True)

    def type(self, text: str) -> None:
        """Type `text` and send it once the screen shows it."""
        self.send("-l", text)
        self.wait_for(text, timeout=10)
        self.send("Enter")

    def say(self, text: str) -> None:
        """Type `text`, send it, and wait until Claude Code has answered it: the turn's last line
        ("✻ Brewed for 0s · done 5:45 AM") below the prompt. Not a count of those lines: earlier
        turns scroll off the screen, and the answer's text shows before the turn ends."""
        self.type(text)

        def ended() -> bool:
            _, prompt, after = self.screen().rpartition(text)
            return bool(prompt) and "· done" in after

        poll_until(ended, 90, f"an answer to {text!r}", interval=0.3)

    def switch_model(self, model: str) -> None:
        """`/model <model>` in the running session, until Claude Code says it switched. It asks first
        ("This conversation is cached for the current model ...") some times, not others: confirmed."""
        self.type(f"/model {model}")
        asked, done = f"Yes, switch to {model}", f"Set model to {model}"
        if done not in self.wait_for(asked, done, timeout=30):
            self.send("Enter")
            self.wait_for(done, timeout=30)

    def stop(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


def onboarded(home: Path, project: Path) -> None:
    """A user past the first start: theme chosen, `project` trusted and onboarded."""
    trusted = {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}
    settings = {"hasCompletedOnboarding": True, "theme": "dark", "projects": {str(project): trusted}}
    (home / ".claude.json").write_text(json.dumps(settings))
