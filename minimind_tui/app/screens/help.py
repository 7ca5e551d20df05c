"""The `?` screen: what every key does."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]minimind-tui[/b] — train, watch and chat with MiniMind models
[b]escape[/b], q or ? closes this help; ↑ ↓ PgUp PgDn scroll it

[b]Anywhere[/b]
  1 2 3 4     Train / Runs / Dataset / Chat (alt+1..4 inside a field)
  escape      back to the tab's main view (from a field, the log, a
              button), where its single-letter keys work again
  ? or F1     this help
  ctrl+p      commands: launch, stop, resume, compare, open a dataset,
              new chat; also themes, screenshot and the key list
  ctrl+q      quit; running trainers keep going, reopen to reattach

[b]Train[/b]
  tab         next field (shift+tab: previous)
  ctrl+l      launch; the command shown is exactly what runs
  ctrl+o      preview the chosen dataset in the Dataset tab (read as
              the chosen mode, with this seq len and tokenizer)
  ctrl+y      copy the command shown (OSC 52: works over SSH, tmux)

[b]Runs[/b]
  ↑ ↓         pick a run: its metrics replay, a live one streams
  s           stop (asks first): the trainer saves and exits,
              and is killed if it has not exited after a timeout
  r           resume a stopped, killed or failed run from its last
              checkpoint
  m or space  mark / unmark the run for comparison
  c           compare the marked runs: curves overlaid, the settings
              that differ, final and lowest loss (again: one run)
  e           smoothing: EMA 0, 0.6, 0.8, 0.9, 0.95, 0.99
  l           log scale on/off           x   x axis: steps / tokens
  v           next chart (loss, lr, grad norm, tok/s, memory)

[b]Dataset[/b]
  n p         next / previous sample     g   go to line N
  x           random sample              j   raw JSON on/off
  t           token view (d: token ids)  i   statistics (c: cancel)
  o           open another file (to the path field)

[b]Chat[/b]
  enter       send; with no model loaded, loads the picked checkpoint
              first, then asks what you typed
  escape      stop the reply while it streams
  ctrl+n      new chat                   ctrl+o  probe (fixed prompts)
  ctrl+y      copy the last reply (OSC 52: works over SSH and tmux)
  ctrl+t      thinking on/off (models whose template has the switch)
  ctrl+r      show / hide the last reply's reasoning

Training runs in its own session: closing this app or losing the SSH
connection never stops it. The GPU strip reads NVML in the background;
N/A marks a value the driver would not give. Memory figures in the
Train tab are estimates."""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [("escape", "dismiss", "Close"), ("q", "dismiss", "Close"), ("question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box", classes="modal-box"):
            yield Static(HELP, id="help-text")
