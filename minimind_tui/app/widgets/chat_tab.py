"""The Chat tab: pick a checkpoint (and a LoRA adapter found beside it), talk to it, probe it.

Loading and generation run in thread workers; torch is imported there, never when the app starts.
Replies stream into the transcript through `call_from_thread`, batched so a fast model cannot flood
the event loop. Esc sets a stop flag the generator checks between tokens.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Collapsible, Input, Label, LoadingIndicator, Select, Static

from minimind_tui.chat.reply import ReplyParts
from minimind_tui.chat.settings import CHAT, CONTINUE, GenerationSettings, default_thinking, mode_for_training_mode
from minimind_tui.runs.layout import CheckpointInfo, find_checkpoints

FLUSH_EVERY_S = 0.05  # how often streamed text reaches the screen


class ReasoningBlock(Collapsible):
    """A reply's reasoning, folded or not. Remembers whether the user opened or closed it (a click or Enter on
    its title), so a reply still streaming does not undo that."""

    toggled_by_user = False

    def _on_collapsible_title_toggle(self, event) -> None:
        self.toggled_by_user = True
        super()._on_collapsible_title_toggle(event)


class ChatMessage(Vertical):
    """One message in the transcript; an assistant message grows while its reply streams. A chat reply is shown
    in its parts (minimind_tui.chat.reply): the reasoning in a dimmed block that collapses once the answer
    starts (a click or Enter on its title, or ctrl+r, opens it again), the answer, then each tool call as
    name(arguments)."""

    DEFAULT_CSS = """
    ChatMessage { height: auto; }
    ChatMessage > Static { height: auto; }
    ChatMessage > .chat-thinking { display: none; border: none; padding: 0; margin: 0; }
    ChatMessage.-thinking > .chat-thinking { display: block; }
    ChatMessage .chat-thinking Contents { padding: 0 0 0 2; }
    ChatMessage .chat-thinking-text { color: $text-muted; text-style: italic; }
    """

    def __init__(self, role: str, text: str = "", **kwargs):
        super().__init__(classes=f"chat-msg chat-{role}", **kwargs)
        self.role = role
        self.text = text  # everything received, as generated
        self.note = ""
        self.parts: ReplyParts | None = None  # a chat reply's parts, once it has any

    def compose(self) -> ComposeResult:
        if self.role == "assistant":
            with ReasoningBlock(title="thinking", collapsed=False, classes="chat-thinking"):
                yield Static("", markup=False, classes="chat-thinking-text")
        yield Static("", markup=False, classes="chat-body")

    def on_mount(self) -> None:
        self._render_text()

    def append(self, piece: str) -> None:
        """Plain text (a continuation, a probe line): shown as it comes."""
        self.text += piece
        self._render_text()

    def show_reply(self, text: str, parts: ReplyParts) -> None:
        """A chat reply so far (all of it, not a piece) and its parts."""
        self.text, self.parts = text, parts
        self._render_text()

    def set_note(self, note: str) -> None:
        self.note = note
        self._render_text()

    @property
    def copy_text(self) -> str:
        """What ctrl+y copies: the answer as generated (tool calls included), without the reasoning."""
        return self.parts.content.strip() if self.parts is not None else self.text

    def toggle_thinking(self) -> bool:
        """Open or close the reasoning block; False when the message has none."""
        if not self.has_class("-thinking"):
            return False
        block = self.query_one(ReasoningBlock)
        block.toggled_by_user = True
        block.collapsed = not block.collapsed
        return True

    def _render_text(self) -> None:
        body_widgets = self.query(".chat-body")
        if not body_widgets:
            return  # not composed yet: on_mount renders what has come by then
        prefix = {"user": "you: ", "assistant": "model: ", "probe": "", "info": ""}.get(self.role, "")
        parts = self.parts
        body = Text(prefix, style="bold") + Text(self.text if parts is None else parts.answer)
        for call in parts.tool_calls if parts is not None else ():
            body += Text("\n🔧 ", style="bold") + Text(call.describe(), style="bold")
        if parts is not None and parts.calling:
            body += Text("\n🔧 …", style="bold")
        if self.note:
            body += Text(f"\n{self.note}", style="dim")
        body_widgets.first(Static).update(body)
        if parts is not None and parts.in_thinking:
            self._render_thinking(parts)

    def _render_thinking(self, parts: ReplyParts) -> None:
        self.add_class("-thinking")
        block = self.query_one(ReasoningBlock)
        if not parts.thinking_open:
            block.title = f"thought ({len(parts.thinking):,} characters)"
        else:  # a reply that ended inside its reasoning (the token limit, or a stop) has no answer
            block.title = "thinking …" if not parts.final else "reasoning, cut off before it ended: no answer"
        self.query_one(".chat-thinking-text", Static).update(Text(parts.thinking or "…"))
        if not block.toggled_by_user:
            # Open while the model reasons, folded away once the answer starts: the answer is what is read.
            block.collapsed = not parts.thinking_open and bool(parts.answer or parts.tool_calls or parts.calling)


NOT_LOADED = "no model loaded: Enter loads the picked checkpoint, then asks what you typed"


class ChatTab(Widget):
    DEFAULT_CSS = """
    ChatTab { layout: vertical; height: 1fr; padding: 0 1; }
    ChatTab #chat-top, ChatTab #chat-settings, ChatTab #chat-system-row { height: 1; }
    ChatTab #chat-top { margin: 1 0 0 0; }
    ChatTab #chat-ckpt { width: 1fr; }
    ChatTab #chat-mode { width: 16; margin: 0 1; }
    ChatTab #chat-top Button { margin: 0 1 0 0; width: auto; min-width: 6; }
    ChatTab Label { padding: 0 1 0 0; }
    ChatTab #chat-settings Input { width: 6; margin: 0 2 0 0; }
    ChatTab #chat-system { width: 1fr; }
    ChatTab #chat-lora { width: 32; margin: 0 0 0 1; display: none; }
    ChatTab.-adapters #chat-lora { display: block; }
    ChatTab #chat-thinking { display: none; margin: 0 0 0 1; }
    ChatTab.-can-think #chat-thinking { display: block; }
    ChatTab #chat-loading { height: 1; width: 6; display: none; }
    ChatTab.-loading #chat-loading { display: block; }
    ChatTab #chat-log { height: 1fr; border: round $primary-background; padding: 0 1; }
    ChatTab .chat-msg { margin: 0 0 1 0; }
    ChatTab .chat-user { color: $text-accent; }
    ChatTab .chat-probe { color: $text-muted; text-style: italic; }
    ChatTab .chat-info { color: $text-muted; }
    ChatTab #chat-status { height: 1; color: $text-muted; }
    """

    BINDINGS = [
        Binding("escape", "stop", "Stop reply"),
        Binding("ctrl+n", "new_chat", "New chat"),
        Binding("ctrl+y", "copy_reply", "Copy reply"),
        Binding("ctrl+o", "probe", "Probe"),
        Binding("ctrl+t", "toggle_thinking", "Thinking on/off"),
        Binding("ctrl+r", "show_reasoning", "Show/hide reasoning", show=False),
    ]

    def __init__(self, root: Path, **kwargs):
        super().__init__(**kwargs)
        self.root = Path(root)
        self.checkpoints: list[CheckpointInfo] = []
        self.session = None  # minimind_tui.chat.session.ChatSession once loaded
        self._asked_before_load: str | None = None  # typed before any model was loaded
        self.loaded_path: Path | None = None
        self._picked: str | None = None  # the checkpoint chosen in the picker (its path)
        self._auto_picked = True  # the picker shows the newest on its own until the user picks one
        self._auto_value: str | None = None  # what the picker chose on its own
        self.generating = False
        self.last_reply = ""
        self._stop = threading.Event()

    # ---- layout -------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="chat-top"):
            yield Select([], prompt="checkpoint (newest first)", id="chat-ckpt", compact=True)
            yield Select([("chat", CHAT), ("continuation", CONTINUE)], value=CHAT, allow_blank=False,
                         id="chat-mode", compact=True)
            yield Button("Load", id="chat-load", variant="primary", compact=True)
            yield Button("↻", id="chat-refresh", tooltip="look for new checkpoints", compact=True)
            yield LoadingIndicator(id="chat-loading")
        defaults = GenerationSettings()
        with Horizontal(id="chat-settings"):
            for name, label, value, tip in (
                    ("temperature", "temp", defaults.temperature, "0 = greedy"),
                    ("top_p", "top-p", defaults.top_p, "nucleus sampling mass, 1 = off"),
                    ("max_new_tokens", "max", defaults.max_new_tokens, "longest reply, in tokens"),
                    ("repetition_penalty", "rep", defaults.repetition_penalty, "repetition penalty, 1 = off"),
                    ("history_turns", "hist", defaults.history_turns,
                     "earlier exchanges sent again; 0 = single turn")):
                yield Label(label)
                yield Input(str(value), id=f"chat-{name}", compact=True, tooltip=tip)
            yield Checkbox("int8 (CPU)", value=False, id="chat-int8", compact=True,
                           tooltip="decode with int8 weight copies on CPU: faster, slightly approximate")
        with Horizontal(id="chat-system-row"):
            yield Label("system")
            yield Input(placeholder="system prompt (empty: MiniMind's default)", id="chat-system", compact=True)
            # Shown once the loaded model has adapter files beside it (model.lora.adapters_beside).
            yield Select([], prompt="no LoRA adapter", id="chat-lora", compact=True,
                         tooltip="a LoRA adapter on top of the loaded weights (unmerged)")
            yield Checkbox("think", value=False, id="chat-thinking", compact=True,
                           tooltip="the model reasons before it answers (ctrl+t): the chat template's thinking "
                                   "switch (minimind-3 open_thinking, MiniMind2 enable_thinking)")
        yield VerticalScroll(id="chat-log")
        yield Input(placeholder="message (Enter sends · Esc stops · Ctrl+N new chat · Ctrl+O probe · "
                                "Ctrl+Y copies the reply)", id="chat-input")
        yield Static(NOT_LOADED, id="chat-status")

    def on_mount(self) -> None:
        self.refresh_checkpoints()

    def on_unmount(self) -> None:
        self._stop.set()  # a reply still streaming ends at its next token

    # ---- checkpoints and loading --------------------------------------------------------------------
    def on_show(self) -> None:
        self.refresh_checkpoints()  # a run may have saved a new checkpoint since the tab was last seen
        focused = self.screen.focused
        if focused is None or self not in focused.ancestors_with_self:  # this tab's keys work at once
            # Typing goes to the message field at once; Enter sends, and with no model loaded it loads the
            # picked checkpoint first (then asks what was typed).
            self.query_one("#chat-input").focus()

    def refresh_checkpoints(self) -> None:
        found = find_checkpoints(self.root)
        if [c.path for c in found] == [c.path for c in self.checkpoints]:
            return  # unchanged: keep the selection and the chosen mode untouched
        self.checkpoints = found
        select = self.query_one("#chat-ckpt", Select)
        current = self._picked
        with select.prevent(Select.Changed):
            select.set_options((self._option_label(c), str(c.path)) for c in found)
        paths = [str(c.path) for c in found]
        # Kept when the user picked it, or when it is the model loaded now; otherwise follow the newest.
        if current in paths and (not self._auto_picked or self.session is not None):
            with select.prevent(Select.Changed):
                select.value = current
        elif paths:
            self._auto_value = paths[0]
            select.value = paths[0]  # the newest (a run may have saved a newer one since)

    @staticmethod
    def _option_label(c: CheckpointInfo) -> str:
        if c.step is not None:
            return c.label  # "<run id> step N (mode)"
        return f"{c.label} ({c.mode or 'unknown mode'})"

    @on(Select.Changed, "#chat-ckpt")
    def _checkpoint_picked(self, event: Select.Changed) -> None:
        if event.value != event.select.value:
            return  # superseded by a later pick (or a refresh) still in the queue
        if str(event.value) != self._auto_value:
            self._auto_picked = False
        info = self._selected_checkpoint()
        if info is not None and str(info.path) != self._picked:
            self._picked = str(info.path)
            mode = self.query_one("#chat-mode", Select)
            with mode.prevent(Select.Changed):  # the default mode for the next load, not the loaded model
                mode.value = mode_for_training_mode(info.mode, info.path.name)

    @on(Select.Changed, "#chat-mode")
    def _mode_changed(self, event: Select.Changed) -> None:
        if event.value != event.select.value:
            return  # superseded
        if self.session is not None and event.value in (CHAT, CONTINUE) and event.value != self.session.mode:
            self.session.mode = event.value
            self.session.new_chat()
            self._set_status()

    def _selected_checkpoint(self) -> CheckpointInfo | None:
        value = self.query_one("#chat-ckpt", Select).value
        return next((c for c in self.checkpoints if str(c.path) == value), None)

    @on(Button.Pressed, "#chat-refresh")
    def _refresh_pressed(self) -> None:
        self.refresh_checkpoints()

    @on(Button.Pressed, "#chat-load")
    def action_load(self) -> None:
        info = self._selected_checkpoint()
        if info is None:
            self.notify("No checkpoint found under out/ or runs/. Train one first.", severity="warning")
            return
        if self.generating:
            self.notify("A reply is streaming; press Esc first.", severity="warning")
            return
        self.add_class("-loading")
        self.query_one("#chat-load", Button).disabled = True
        self._status(f"loading {info.label} …")
        self._load(info.path, self.query_one("#chat-mode", Select).value)

    @work(thread=True, exclusive=True, group="chat-load")
    def _load(self, path: Path, mode: str) -> None:
        try:
            from minimind_tui.chat.loading import load_session  # torch arrives here, in the worker
            from model.lora import adapters_beside

            session = load_session(path, root=self.root, mode=mode)
            adapters = adapters_beside(path)
        except Exception as e:  # shown in the tab; a bad file must not take the app down
            message = str(e) if getattr(e, "user_facing", False) else f"{type(e).__name__}: {e}"
            self.app.call_from_thread(self._load_failed, message)
            return
        self.app.call_from_thread(self._loaded, session, path, adapters)

    def _loaded(self, session, path: Path, adapters: list[Path]) -> None:
        self.session, self.loaded_path = session, path
        self._set_up_thinking()
        self.remove_class("-loading")
        self.query_one("#chat-load", Button).disabled = False
        self._show_adapters(path, adapters)
        self._clear_log()
        self._set_status()
        self.query_one("#chat-input", Input).focus()
        question, self._asked_before_load = self._asked_before_load, None
        if question:
            self._ask(question)

    def _load_failed(self, message: str) -> None:
        question, self._asked_before_load = self._asked_before_load, None
        field = self.query_one("#chat-input", Input)
        if question and not field.value:
            field.value = question  # not lost: it is asked once a checkpoint loads
        self.remove_class("-loading")
        self.query_one("#chat-load", Button).disabled = False
        self._status(f"load failed: {message}")
        self.notify(message, title="Could not load the checkpoint", severity="error", timeout=10)

    # ---- LoRA adapters ------------------------------------------------------------------------------
    def _show_adapters(self, weights: Path, adapters: list[Path]) -> None:
        select = self.query_one("#chat-lora", Select)
        with select.prevent(Select.Changed):
            select.set_options((str(a.relative_to(weights.parent)), str(a)) for a in adapters)
            select.clear()
        self.set_class(bool(adapters), "-adapters")

    @on(Select.Changed, "#chat-lora")
    def _adapter_picked(self, event: Select.Changed) -> None:
        if event.value != event.select.value or self.session is None:
            return  # superseded by a later pick, or nothing loaded to put it on
        picked = None if event.value is Select.NULL else Path(str(event.value))
        if picked == self.session.adapter:
            return
        if self.generating or self.has_class("-loading"):
            self.notify("Still answering; Esc stops the reply.", severity="warning")
            self._select_adapter(self.session.adapter)
            return
        self.add_class("-loading")
        self._status(f"LoRA adapter: {picked.name if picked else 'none'} …")
        self._switch_adapter(self.session, picked)

    @work(thread=True, exclusive=True, group="chat-load")
    def _switch_adapter(self, session, path: Path | None) -> None:
        try:
            session.use_adapter(path)  # a file that does not fit leaves the model as it was
        except Exception as e:
            message = str(e) if getattr(e, "user_facing", False) else f"{type(e).__name__}: {e}"
            self.app.call_from_thread(self.notify, message, title="Could not use the adapter", severity="error")
        self.app.call_from_thread(self._adapter_done, session)

    def _adapter_done(self, session) -> None:
        self.remove_class("-loading")
        if session is self.session:
            self._select_adapter(session.adapter)
            self._set_status()

    def _select_adapter(self, path: Path | None) -> None:
        select = self.query_one("#chat-lora", Select)
        with select.prevent(Select.Changed):
            if path is None:
                select.clear()
            else:
                select.value = str(path)

    # ---- thinking -----------------------------------------------------------------------------------
    def _set_up_thinking(self) -> None:
        """The thinking switch shows only for a tokenizer whose template has one, set as the generation's eval
        script sets it (minimind-3: off; MiniMind2: on, which is its template's default)."""
        can_think = self.session.tokenizer.thinking_switch is not None
        self.set_class(can_think, "-can-think")
        self.refresh_bindings()
        if can_think:
            default = default_thinking(self.session.model.generation)
            self.query_one("#chat-thinking", Checkbox).value = True if default is None else default

    def action_toggle_thinking(self) -> None:
        box = self.query_one("#chat-thinking", Checkbox)
        box.value = not box.value
        self.notify(f"Thinking {'on' if box.value else 'off'} for the next reply.")

    def action_show_reasoning(self) -> None:
        replies = [m for m in self.query(ChatMessage) if m.role == "assistant"]
        if not replies or not replies[-1].toggle_thinking():
            self.notify("The last reply has no reasoning.", severity="warning")

    # ---- conversation -------------------------------------------------------------------------------
    @on(Input.Submitted, "#chat-input")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if self.session is None and not self.generating:
            if self.has_class("-loading"):
                return
            if self._selected_checkpoint() is None:
                self.action_load()  # says there is nothing to load; the text stays in the field
                return
            self._asked_before_load = text or None  # asked once the model is in
            event.input.value = ""
            self.action_load()
            return
        if not text or not self._ready():
            return
        event.input.value = ""
        self._ask(text)

    def _ask(self, text: str) -> None:
        self._add_message("user", text)
        reply = self._add_message("assistant", text if self.session.mode == CONTINUE else "")
        self._start([(text, reply, True)])

    def action_probe(self) -> None:
        if not self._ready():
            return
        from minimind_tui.chat.probes import probes

        jobs = []
        found = probes(self.session.mode, demo=self._is_demo_model())
        self._add_message("info", f"probe: {len(found)} fixed prompts, each answered on its own")
        for i, probe in enumerate(found, start=1):
            self._add_message("probe", f"[{i}/{len(found)}] {probe.prompt}")
            reply = self._add_message("assistant", probe.prompt if self.session.mode == CONTINUE else "")
            jobs.append((probe.prompt, reply, False, probe))
        self._start(jobs)

    def _ready(self) -> bool:
        if self.session is None:
            self.notify("Load a checkpoint first.", severity="warning")
            return False
        if self.generating:
            self.notify("Still answering; Esc stops the reply.", severity="warning")
            return False
        try:
            self._apply_settings()
        except ValueError as e:
            self.notify(str(e), title="Check the settings", severity="error")
            return False
        return True

    def _apply_settings(self) -> None:
        def value(name: str, kind):
            raw = self.query_one(f"#chat-{name}", Input).value.strip()
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"{name.replace('_', ' ')}: {raw!r} is not a number") from None

        settings = GenerationSettings(
            temperature=value("temperature", float), top_p=value("top_p", float),
            max_new_tokens=value("max_new_tokens", int), repetition_penalty=value("repetition_penalty", float),
            history_turns=value("history_turns", int),
            system_prompt=self.query_one("#chat-system", Input).value.strip(),
            seed=self.session.settings.seed, int8=self.query_one("#chat-int8", Checkbox).value,
            thinking=self.query_one("#chat-thinking", Checkbox).value if self.has_class("-can-think") else None
        ).validate()
        self.session.settings = settings

    def _start(self, jobs: list) -> None:
        self.generating = True
        self.refresh_bindings()  # escape now stops the reply
        self._stop.clear()
        self._status("answering … (Esc stops)")
        self._generate(jobs)

    @work(thread=True, exclusive=True, group="chat-generate")
    def _generate(self, jobs: list) -> None:
        session, scored = self.session, []
        try:
            for job in jobs:
                prompt, message, remember = job[:3]
                if self._stop.is_set():
                    self.app.call_from_thread(message.set_note, "(skipped)")
                    continue
                self._stream(session, prompt, message, remember)
                stats = session.last_stats
                note = stats.summary() if stats is not None else ""
                if self._stop.is_set() and "stopped" not in note:
                    note = f"{note} (stopped)".strip()
                if len(job) > 3 and job[3].expected is not None:
                    ok = job[3].check(message.text[len(prompt):] if session.mode == CONTINUE else message.copy_text)
                    scored.append(bool(ok))
                    note += "  ✓ correct" if ok else f"  ✗ expected {job[3].expected}"
                self.app.call_from_thread(self._reply_done, message, note)
        except Exception as e:
            message = str(e) if getattr(e, "user_facing", False) else f"{type(e).__name__}: {e}"
            self.app.call_from_thread(self.notify, message, title="Generation failed", severity="error")
        finally:
            summary = f"held-out questions correct: {sum(scored)}/{len(scored)}" if scored else None
            self.app.call_from_thread(self._all_done, summary)

    def _stream(self, session, prompt: str, message: ChatMessage, remember: bool) -> None:
        """One reply into its message, at most every FLUSH_EVERY_S: a continuation as text, a chat reply in its
        parts (reasoning, answer, tool calls), split in this worker."""
        chat = session.mode == CHAT
        pending, last_flush = [], time.monotonic()

        def flush() -> None:
            if chat:
                parsed = session.parsed
                self.app.call_from_thread(message.show_reply, parsed.text, parsed.parts())
            else:
                self.app.call_from_thread(message.append, "".join(pending))

        for piece in session.reply(prompt, stop=self._stop, remember=remember):
            pending.append(piece)
            if time.monotonic() - last_flush >= FLUSH_EVERY_S:
                flush()
                pending, last_flush = [], time.monotonic()
        if pending or chat:
            flush()  # a chat reply's end may release text held back in case it was a tag

    def _reply_done(self, message: ChatMessage, note: str) -> None:
        message.set_note(note)
        self.last_reply = message.copy_text
        self._status(f"{self._describe()} · last reply: {note}")
        self.query_one("#chat-log", VerticalScroll).scroll_end(animate=False)

    def _all_done(self, summary: str | None) -> None:
        self.generating = False
        self.refresh_bindings()
        if summary:
            self._add_message("info", summary)
            self._status(summary)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        # Escape stops a streaming reply; otherwise it falls through to the app (leave the text field).
        if action == "stop":
            return self.generating
        if action == "toggle_thinking":  # offered only for a model whose template has the switch
            return self.has_class("-can-think")
        return True

    def action_stop(self) -> None:
        if self.generating:
            self._stop.set()

    def action_new_chat(self) -> None:
        if self.generating:
            self.notify("Still answering; Esc stops the reply.", severity="warning")
            return
        if self.session is not None:
            self.session.new_chat()
        self._clear_log()
        self.last_reply = ""
        self._set_status()

    def action_copy_reply(self) -> None:
        if not self.last_reply:
            self.notify("No reply to copy yet.", severity="warning")
            return
        self.app.copy_to_clipboard(self.last_reply)  # OSC 52: works over SSH and inside tmux
        self.notify(f"Copied {len(self.last_reply)} characters.")

    # ---- helpers ------------------------------------------------------------------------------------
    def _is_demo_model(self) -> bool:
        from minimind_tui.demo import demo_tokenizer_dir

        path = getattr(self.session.tokenizer, "path", None)
        return path is not None and Path(path).resolve() == demo_tokenizer_dir().resolve()

    def _add_message(self, role: str, text: str) -> ChatMessage:
        message = ChatMessage(role, text)
        log = self.query_one("#chat-log", VerticalScroll)
        log.mount(message)
        log.scroll_end(animate=False)
        return message

    def _clear_log(self) -> None:
        self.query_one("#chat-log", VerticalScroll).remove_children()

    def _set_status(self) -> None:
        if self.session is None:
            self._status(NOT_LOADED)
        else:
            self._status(self._describe())

    def _describe(self) -> str:
        """The session's one-liner, named by the picker's label: a run's weights are all called model.pth."""
        text = self.session.describe()
        loaded = next((c for c in self.checkpoints if c.path == self.loaded_path), None)
        if loaded is None or ": " not in text:
            return text
        return f"{self._option_label(loaded)}: {text.split(': ', 1)[1]}"

    def _status(self, text: str) -> None:
        self.query_one("#chat-status", Static).update(Text(text))
