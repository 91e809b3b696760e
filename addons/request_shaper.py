"""The request side: a Claude Code Messages request made acceptable to the target model.

For POST /v1/messages (with or without ?beta=true) the body is folded, stripped,
capped and trimmed (addons/request/shaping.py, addons/request/trim.py) under the model's policy
(addons/config/policy.py, option `stabilizer_policy`). A history that cannot fit even
after trimming, or that was over the model's window already before its latest turn
(trim.py's bound; never Claude Code's own compaction request, trim.is_compaction_request),
is answered here with Anthropic's 400 "prompt is too long", on which Claude Code compacts.

The model's policy and route come from the model name Claude Code sends: the
LiteLLM config (option `stabilizer_litellm_config`) says which provider model
and route stand behind it (addons/config/routes.py); the route decides how thinking
is written (addons/request/thinking.py).

POST /v1/messages/count_tokens is folded and stripped only: Claude Code asks it
for the true size of what it would send, so it is neither capped nor trimmed.

The body is parsed by addons/request/history.py: a session's next turn is parsed from
its previous one (only what changed), and what was worked out from the messages
the two share comes from the previous request's memo instead of being done
again. A compressed body reaches it decoded (BodyDecoder, addons/body_decoder.py,
ordered before it). A body that is not a JSON object with a `messages` list, or
whose shaped messages are malformed (addons/request/validation.py), is answered
here with Anthropic's 400 invalid_request_error: LiteLLM would make most of them
a 500, after retrying for seconds. The addon never touches host or
port: the Upstream addon, ordered before it, decides where the request goes (and
puts an --upstream path prefix in front of the path, so the addon goes by the
kind noted as the request arrived, addons/flow/kind.py).

A body with more than OFF_LOOP_BYTES that are new (not a session's earlier
turns) is counted and shaped in a worker thread: its token count (seconds for
tens of MB, docs/benchmarks.md) would otherwise hold every other flow's events
on mitmproxy's event loop. A body above PARSE_ON_LOOP_BYTES is parsed there as
well. Meanwhile the other requests (another session's, a subagent's, the same
session's small ones) are shaped on the loop as usual, the history shared
between the two (addons/request/history.py); only another large one waits, for
the worker thread.

Lone UTF-16 surrogates in the body's strings (addons/wire/json_codec.py, parse_json) are
replaced by U+FFFD and the body written again: LiteLLM refuses them.

The 400 reads "prompt is too long: N tokens > M maximum" with N the estimate of
the shaped request and M its prompt budget (context_window - max_tokens -
safety_margin_tokens).

For the response addon it leaves its notes on the flow (TurnNotes,
addons/flow/notes.py: the model, what a refusal's hint names, the estimates,
the tokens trimming cut, which the usage then counts, the window, and what it did). Each request
it changes gets one INFO line: model, tokens before and after trimming, messages
removed, and the changes (keys stripped among them).
"""

import asyncio
import gc
import logging
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

from mitmproxy import ctx, exceptions, http
from mitmproxy.utils import human

from addons.config.fallbacks import Chain, chain_policy, chains_of
from addons.config.learned import LearnedLimits
from addons.config.litellm_config import LiteLLMConfigError, read_litellm_config
from addons.config.model_directory import picker_ids
from addons.config.policy import ModelPolicy, Policy, PolicyError, load_policy
from addons.config.routes import UNKNOWN, Route, load_routes
from addons.errors.anthropic import prompt_too_long_message
from addons.flow.answers import refuse, refused
from addons.flow.change import Change, ChangeKind, described, stored
from addons.flow.kind import KIND, SHAPED, FlowKind
from addons.flow.notes import NOTES, TurnNotes, add_changes, count, turn_notes
from addons.messages.tokens import count_fixed, count_text, estimate_request
from addons.request.history import History, Parsed, encode, whole
from addons.request.shaping import cap_max_tokens, shape_request, turn_elsewhere
from addons.request.thinking import needs_reasoning_note, plan_thinking
from addons.request.trim import Trimmed, trim_request
from addons.request.validation import request_problem

# What LiteLLM answers itself when it judges auto mode's tool calls, and keeps from the backend.
SAFEGUARDS_KEYS = frozenset({"safeguards"})

logger = logging.getLogger(__name__)

# A request with more new bytes than this (not taken over from the session's previous
# turn) is counted and shaped in a worker thread: counting tens of MB takes seconds, which
# on the event loop would hold every other flow. A next turn of a long session stays on the
# loop: the hop to a thread costs it more than its few milliseconds of work.
OFF_LOOP_BYTES = 1 << 20
# A body larger than this is parsed in the worker thread too (orjson's time grows with the
# size: docs/benchmarks.md); a session's history of a 1M-token window is about 4 MB.
PARSE_ON_LOOP_BYTES = 8 << 20


class Target(NamedTuple):
    """Where a request's model leads: its route, its policy, and the policy entry that applies (or would)."""

    route: Route
    policy: ModelPolicy
    policy_key: str | None


class Settings(NamedTuple):
    """The options the request hook reads, read in configure(): mitmproxy deep-copies an option's
    value on every read of ctx.options, twice when it is at its default."""

    policy_file: str = ""
    incremental: bool = True
    check_incremental: bool = False
    provenance: bool = True
    # Keys that go on to LiteLLM whatever the policy: auto mode's `safeguards`, when LiteLLM
    # judges the tool calls (option stabilizer_safeguards_classifier, addons/safeguards.py).
    litellm_keys: frozenset[str] = frozenset()

    @classmethod
    def read(cls, options) -> "Settings":
        judged = "stabilizer_safeguards_classifier" in options and options.stabilizer_safeguards_classifier
        return cls(
            policy_file=options.stabilizer_policy,
            incremental=options.stabilizer_incremental,
            check_incremental=options.stabilizer_check_incremental,
            provenance=options.stabilizer_thinking_provenance,
            litellm_keys=SAFEGUARDS_KEYS if judged else frozenset(),
        )


class RequestShaper:
    def __init__(self):
        self.settings = Settings()
        self.policy = Policy()
        self.routes: dict[str, Route] = {}
        self.picked: dict[str, str] = {}  # the model picker's id of each name in routes, to the name
        self.chains: dict[str, Chain] = {}  # LiteLLM's fallbacks of each model that has any
        self.history = History()
        self.learned = LearnedLimits()  # what backends' refusals said, applied over the policy
        # One large request in the worker thread at a time: two would only share the cores.
        self._worker = asyncio.Lock()

    def load(self, loader):
        loader.add_option(
            "stabilizer_policy",
            str,
            "",
            "The request policy (config/stabilizer.yaml): context window, output cap and trimming per model. "
            "Empty: built-in defaults.",
        )
        loader.add_option(
            "stabilizer_litellm_config",
            str,
            "",
            "LiteLLM's config: which provider model and route stand behind each model name. "
            "Empty: every name is its own model id, on the OpenAI-compatible route.",
        )
        loader.add_option(
            "stabilizer_incremental",
            bool,
            True,
            "Parse a session's next turn from its previous one (addons/request/history.py). Off: every body is "
            "parsed whole and nothing is remembered between requests (to rule it out when debugging).",
        )
        loader.add_option(
            "stabilizer_thinking_provenance",
            bool,
            True,
            "Name the model that wrote each thinking block in the signature handed to Claude Code, and give "
            "each model the thinking it takes by that (addons/messages/provenance.py). Off: signatures pass as "
            "the providers wrote them and every thinking block goes back to whichever model answers next, "
            "another provider's signature to one that verifies it included (to show what it prevents).",
        )
        loader.add_option(
            "stabilizer_check_incremental",
            bool,
            False,
            "Debugging: parse every body continued from a previous one whole as well, log an error where "
            "the two differ, and go on with the whole parse.",
        )

    def configure(self, updated):
        # Read again on any change: options change at start and on `set`, never per flow.
        self.settings = Settings.read(ctx.options)
        if "stabilizer_policy" in updated:
            try:
                self.policy = load_policy(ctx.options.stabilizer_policy)
            except PolicyError as e:
                raise exceptions.OptionsError(str(e)) from None
            source = ctx.options.stabilizer_policy or "built-in defaults"
            logger.info("request policy: %s (%d models)", source, len(self.policy.models))
        if "stabilizer_litellm_config" in updated:
            try:
                path = ctx.options.stabilizer_litellm_config
                config = read_litellm_config(path) if path else None
                self.routes = load_routes(config, path) if path else {}
            except LiteLLMConfigError as e:
                raise exceptions.OptionsError(str(e)) from None
            self.picked = picker_ids(self.routes)
            self.chains = chains_of(config, self.routes)
            for model, chain in self.chains.items():
                logger.info(
                    "model=%s may fall back to %s (LiteLLM's fallbacks): its requests are shaped for them too",
                    model, ", ".join(chain.reached),
                )  # fmt: skip
        if problem := self._model_reference_problem():
            raise exceptions.OptionsError(problem)

    def _model_reference_problem(self) -> str | None:
        """Why a policy entry names a model that cannot take the turns sent to it, or None."""
        policy_file = ctx.options.stabilizer_policy or "the built-in policy"
        if self.routes and (unknown := self.policy.unknown_model_names(self.routes)):
            return f"{policy_file}: {unknown[0]} ({ctx.options.stabilizer_litellm_config})"
        for key, entry in self.policy.entries().items():
            vision = entry.vision_model
            if vision is not None and "image" not in self._target(vision).policy.accepted_block_types:
                return (
                    f"{policy_file}: {key}.vision_model: {vision!r} does not read images by its own entry "
                    f"or a LiteLLM fallback's (accepted_block_types has no image); name a model that does"
                )
        return None

    def _target(self, model: object) -> "Target":
        """The route, policy and policy key of the model a request names; the policy is its fallback
        chain's (addons/config/fallbacks.py) where LiteLLM may send the request on."""
        target = self._own_target(model)
        chain = self.chains.get(model) if isinstance(model, str) else None
        if chain is None:
            return target
        route, policy, _ = target
        policy = chain_policy(
            policy,
            [self._own_target(name).policy for name in chain.reached],
            [self._own_target(name).policy for name in chain.larger_windows],
        )
        return target._replace(policy=policy)

    def _own_target(self, model: object) -> "Target":
        """The route, policy and policy key of one model, its fallbacks aside."""
        route = self.routes.get(model, UNKNOWN) if isinstance(model, str) else UNKNOWN
        key, policy = self.policy.entry(model, route.model_id)
        return Target(route, self.learned.applied(key, policy), key)

    def learn(self, key: str, setting: str, value: int) -> bool:
        """Shape every later request for the policy entry `key` within a limit its backend stated
        (addons/limit_learner.py); False when the entry allows no more than that already."""
        policy = self.learned.applied(key, self.policy.models.get(key, self.policy.defaults))
        return self.learned.learn(key, setting, value, policy)

    def refit(self, flow: http.HTTPFlow) -> bool:
        """Fit the request as it was sent into its model's limits again, learned ones among them:
        max_tokens capped, messages trimmed, or the request answered "prompt is too long" here when
        they cannot fit. Whether anything changed (else sending it again would meet the same refusal)."""
        parsed = whole(flow.request.raw_content or b"")
        policy = self._target(parsed.body.get("model")).policy
        body, changes = cap_max_tokens(parsed.body, policy)
        # No bound here: the turn was let through once already; its next one meets the bound
        # under the learned window, and Claude Code compacts then.
        trimmed = trim_request(body, policy, (), parsed.memo)
        changes += trimmed.changes()
        if trimmed.removed or trimmed.shortened:
            body = trimmed.request
        if not changes:
            return False
        notes = turn_notes(flow)
        if trimmed.too_long:
            _answer_too_long(flow, trimmed, changes)
        else:
            flow.request.set_content(encode(body, parsed))
            notes["input_tokens"] = trimmed.tokens_after
            if trimmed.tokens_before > trimmed.tokens_after:
                notes["trimmed_tokens"] = count(notes, "trimmed_tokens") + trimmed.tokens_before - trimmed.tokens_after
            notes["context_window"] = policy.context_window
            notes["max_output_tokens"] = policy.max_output_tokens
        add_changes(notes, changes)
        logger.info("model=%s refitted: %s", parsed.body.get("model"), described(changes))
        return True

    def running(self):
        # Load the tokenizer's tables now: otherwise the first request waits for them.
        count_text("warm up")

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        # What FlowClassifier noted as the request arrived, before any request hook (addons/flow/kind.py).
        if flow.response or (kind := flow.metadata.get(KIND)) not in SHAPED:
            return None
        if len(flow.request.raw_content or b"") > PARSE_ON_LOOP_BYTES:
            return self._shape_off_loop(flow, kind, None)
        with _collector_paused():
            # On the loop: a next turn parses only what is new, and orjson is fast for the rest.
            parsed = self._parsed(flow)
            if parsed is None:
                return None
            if _new_bytes(parsed, flow.request.raw_content or b"") <= OFF_LOOP_BYTES:
                self._shape_parsed(flow, parsed, kind)
                return None
        # Much that is new to count: awaited by mitmproxy for this flow only, every other
        # flow's events go on meanwhile.
        return self._shape_off_loop(flow, kind, parsed)

    async def _shape_off_loop(self, flow: http.HTTPFlow, kind: str, parsed: Parsed | None) -> None:
        """Shaping in the worker thread, one large request at a time; the loop's requests go on."""
        size = human.pretty_size(len(flow.request.raw_content or b""))
        logger.info("%s %s: %s counted off the event loop", flow.request.method, flow.request.path, size)
        async with self._worker:
            await asyncio.to_thread(self._parse_and_shape, flow, kind, parsed)

    def _parse_and_shape(self, flow: http.HTTPFlow, kind: str, parsed: Parsed | None) -> None:
        with _collector_paused():
            if parsed is None and (parsed := self._parsed(flow)) is None:
                return
            self._shape_parsed(flow, parsed, kind)

    def _parsed(self, flow: http.HTTPFlow) -> Parsed | None:
        """The body parsed, or None when it was answered 400 instead."""
        parsed = self._parse(flow.request.raw_content or b"")
        if isinstance(parsed, str):
            refuse(flow, parsed)
            return None
        return parsed

    def _shape_parsed(self, flow: http.HTTPFlow, parsed: Parsed, kind: str) -> None:
        try:
            self._shape(flow, parsed, trim=kind == FlowKind.MESSAGES)
        except Exception:
            logger.exception(
                "request addon failed; %s %s goes upstream unchanged", flow.request.method, flow.request.path
            )

    def _parse(self, raw: bytes) -> Parsed | str:
        """The body as a Messages request, or why it is not one."""
        try:
            parsed = self._parsed_body(raw)
        except ValueError as e:
            return f"the body is not JSON: {e}"
        if not isinstance(parsed.body, dict):
            return f"the body is a JSON {type(parsed.body).__name__}, not an object"
        if not isinstance(parsed.body.get("messages"), list):
            return "messages: expected a list of messages"
        return parsed

    def _parsed_body(self, raw: bytes) -> Parsed:
        """`raw` parsed, from the session's previous body where it continues one (ValueError: not JSON)."""
        if not self.settings.incremental:
            return whole(raw)
        parsed = self.history.parse(raw)
        if self.settings.check_incremental and parsed.reused:
            if (alone := whole(raw)).body != parsed.body:
                logger.error(
                    "a body parsed from the previous one (%d messages taken over) differs from "
                    "its whole parse; the whole parse goes on",
                    parsed.reused,
                )
                return alone
        return parsed

    def _shape(self, flow: http.HTTPFlow, parsed: Parsed, *, trim: bool) -> None:
        body, memo = parsed.body, parsed.memo
        model = body.get("model")
        if isinstance(model, str) and (listed := self.picked.get(model)) is not None:
            # A model picked in Claude Code's /model goes on under its own name.
            body, model = {**body, "model": listed}, listed
        route, policy, policy_key = self._target(model)
        routed: list[Change] = []
        # The turn goes elsewhere (images, then thinking off: each reason once); the next one
        # comes back here.
        while len(routed) < 2 and (elsewhere := turn_elsewhere(body, policy, route.kind)) is not None:
            other, why = elsewhere
            body = {**body, "model": other}
            route, policy, policy_key = self._target(other)
            routed.append(Change(ChangeKind.ROUTED, f"routed to {other}: {why}"))
        # The model that answers, named in its thinking signatures (addons/messages/provenance.py).
        origin = route.model_id or (body["model"] if isinstance(body.get("model"), str) else "")
        provenance = self.settings.provenance
        thinking = plan_thinking(policy.thinking, route.kind, origin, provenance)
        # Auto mode's verdicts are asked of a turn, never of a count.
        litellm_keys = self.settings.litellm_keys if trim else frozenset()
        shaped = shape_request(
            body,
            policy,
            cap=trim,
            memo=memo,
            route=route.kind,
            target=origin,
            litellm_keys=litellm_keys,
            thinking=thinking,
        )
        if problem := request_problem(shaped.request, memo):
            refuse(flow, problem)
            return
        changes = routed + shaped.changes
        if parsed.repaired:
            # Written again below: the client's bytes still hold them.
            repaired = f"replaced {parsed.repaired} lone UTF-16 surrogates with U+FFFD"
            changes.insert(0, Change(ChangeKind.REPAIRED, repaired))
        outgoing, removed = shaped.request, 0
        if trim:
            # The bound of trim.py: a client that did not compact after a trim is refused, and compacts.
            window = policy.context_window
            trimmed = trim_request(shaped.request, policy, shaped.reminders, memo, history_bound=window)
            before, after = trimmed.tokens_before, trimmed.tokens_after
            changes += trimmed.changes()
            if trimmed.removed or trimmed.shortened:
                outgoing, removed = trimmed.request, trimmed.removed
        else:
            before = after = estimate_request(outgoing, memo)

        if trim and trimmed.too_long:
            _answer_too_long(flow, trimmed, changes)
        else:
            if flow.request.headers.pop("anthropic-beta", None) is not None:
                changes.append(Change(ChangeKind.STRIPPED, "removed anthropic-beta header"))
            if outgoing is not parsed.body or parsed.repaired:
                flow.request.set_content(encode(outgoing, parsed))
        flow.metadata[NOTES] = TurnNotes(
            model=model if isinstance(model, str) else "",
            # Named in the hint of a backend's refusal (addons/errors/upstream.py): the file, and the
            # entry under `models` that applies, or would if it were written.
            policy_file=self.settings.policy_file,
            policy_key=policy_key,
            reasoning_required=needs_reasoning_note(policy.thinking),
            signatures_verified=thinking.checks_signatures,
            stream=body.get("stream") is True,
            input_tokens=after,
            # Of which the system prompt, the tools and the request's overhead (addons/response/usage.py
            # tells LiteLLM's stand-in usage, which leaves them out, from the backend's by it).
            fixed_tokens=count_fixed(outgoing, memo),
            context_window=policy.context_window,
            max_output_tokens=policy.max_output_tokens,
            think_tags=thinking.in_text,
            changes=stored(changes),
        )
        if provenance:
            flow.metadata[NOTES]["origin"] = origin
        if before > after:
            # Added to the usage Claude Code reads, so its count passes its window and it compacts.
            flow.metadata[NOTES]["trimmed_tokens"] = before - after
        if "safeguards" in litellm_keys and "safeguards" in outgoing:
            flow.metadata[NOTES]["safeguards"] = True
        if changes:
            logger.info(
                "model=%s tokens=%d->%d removed=%d changes: %s", model, before, after, removed, described(changes)
            )


def _answer_too_long(flow: http.HTTPFlow, trimmed: Trimmed, changes: list[Change]) -> None:
    """Answer Anthropic's "prompt is too long", on which Claude Code compacts."""
    why = " (the history before this turn is over the model's window)" if trimmed.over_bound else ""
    changes.append(refused(flow, prompt_too_long_message(trimmed.tokens_before, trimmed.budget), why=why))


def _new_bytes(parsed: Parsed, raw: bytes) -> int:
    """The body's bytes that were not taken over from a remembered body (its reused messages)."""
    layout = parsed.layout
    if not parsed.reused or layout is None:
        return len(raw)
    return len(raw) - (layout.ends[parsed.reused - 1] - layout.first)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a request is parsed and shaped.

    A long session parses into tens of thousands of objects that all die when
    the hook returns. Collections started meanwhile would only scan them (and
    move them to older generations, bringing the next full collection of the
    whole process closer). Collection is process-wide: on the event loop the
    hook never awaits, so nothing else runs while it is off; in the worker
    thread the loop's other flows run meanwhile without it too, until the
    shaping is done. A pause already on is left to the one that began it.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
