"""One serving-engine iteration priced from its mix: the decode tokens of running requests, each at its own context,
plus chunks of prompts over the keys they attend to, as vLLM, SGLang and TensorRT-LLM batch in flight.

An iteration runs every layer once over all its new tokens stacked (T: one per decoding request plus the chunks'
tokens), so its kernels split three ways by what their work depends on:
- attention (a kernel of class prefill or decode attention: qk, softmax, av) depends on each sequence's queries and
  keys. Engines run one variable-length attention call a layer over every sequence, so the sequences' work (their
  compute and memory times, exponentials, sequences x KV heads) is summed into one kernel a layer that pays one
  fixed cost; its decode part is priced by the decode class and its chunks' part by the prefill class;
- the head (ops tagged `head`: the final norm and lm_head) runs on the rows that sample a token: the decoding
  requests and the chunks that end their prompt;
- everything else (projections, norms, activations, MLP or MoE, embeddings, collectives) runs on the T tokens.
Each part is priced by the report's own step (opgraph.pricing.cost) on the graph of a uniform phase that has it at
those sizes, traced once and replayed (opgraph.trace): an iteration of n decodes at one context costs exactly what
`opgraph report` gives that decode step. Plans whose attention kernels hold other ops (`fused`, `megakernel`: the
projections fused into attention) cannot be split this way and are refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import collections
import functools

import attrs
import numpy as np

from opgraph.core.fusion import FusionPlan
from opgraph.core.phase import Phase
from opgraph.core.sizes import maximum
from opgraph.errors import OpgraphError
from opgraph.pricing.cost import analyze, block_costs, kernel_work
from opgraph.pricing.hardware import Hardware
from opgraph.pricing.kinds.attention import PREFILL, PREFILL_ATTENTION as PREFILL_KIND
from opgraph.pricing.timing import KernelWork, expected_fused
from opgraph.trace import Tabled, Traced

HEAD = "head"
WORK = ("compute_s", "memory_s", "transcendentals", "attention_rows")  # what attention's formula reads


@attrs.frozen
class Iteration:
    """One iteration's time: expected (the time model's) and roofline, and the expected time by kernel class."""

    expected_s: float
    roofline_s: float
    by_class: dict[str, float]  # expected seconds by kernel class (attention by its part: decode, prefill)
    tokens: int  # new tokens stacked: decodes plus chunk tokens


_attends = PREFILL.takes  # attention's own work: the score and value products and the softmax over scores
BLOCK = "block"  # per-block times of a pipeline's iteration are keyed (BLOCK, block name, field)


def _flat(model):
    """A pipeline's model as one pass of a batch through all its stages: every block once at the whole batch (the
    blocks a pipeline model holds), not split into micro-batches."""
    return attrs.evolve(model, stages=(), micro=None, micro_batches=1) if model.stages else model


KEPT_PRICERS = 16  # pricers kept for later calls (each holds its traces and attention tables)
_PRICERS: collections.OrderedDict = collections.OrderedDict()


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """(a, b) where y = a + b x at every point to 1e-13 (a column of the attention table that is a straight line in
    the past, as attention's work is without a window), else None."""
    if len(x) < 2:
        return None
    b = (y[-1] - y[0]) / (x[-1] - x[0])
    a = y[0] - b * x[0]
    return (a, b) if np.allclose(a + b * x, y, rtol=1e-13, atol=0.0) else None


def _many(traced: Traced, variable: str, sizes: np.ndarray) -> dict:
    """traced.many at `sizes`; a few sizes are evaluated one by one instead, as a call would (a trace costs about
    ten plain evaluations, and a run meets few token counts)."""
    if len(sizes) > 3:
        return traced.many(**{variable: sizes})
    points = [traced(int(x)) for x in sizes]
    labels = list(dict.fromkeys(k for p in points for k in p))
    return {k: np.array([float(p.get(k, 0.0)) for p in points]) for k in labels}


class IterationPricer:
    """Prices iterations of one model, fusion plan and GPU; `build(phase)` gives the model for a phase."""

    def __init__(self, build, plan: FusionPlan, hw: Hardware):
        self.build, self.plan, self.hw = build, plan, hw
        model = build(Phase.decode(1, 1))
        # Pipeline parallelism: an iteration is one batch's pass through every stage, its blocks priced at the whole
        # batch (the stages' counts say which GPUs run what); `stages` is each stage's (block, instances).
        self.stages = tuple(st.counts for st in model.stages)
        self._counts = {b.name: b.count for b in model.blocks}
        # the whole analysis once (its checks: every fusion group matches an op); the parts below cost blocks alone
        probe = analyze(_flat(model), plan, hw)
        for b in probe.blocks:
            for k in b.kernel_costs():
                ops = [b.graph.ops[n] for n in k.ops]
                if any(map(_attends, ops)) and not all(map(_attends, ops)):
                    raise OpgraphError(f"fusion plan {plan.name!r} fuses attention with other work ({k.label} in "
                                       f"block {b.name!r}); serving prices each request's attention apart from the "
                                       f"work on all the tokens: use a plan whose attention kernels hold only qk, "
                                       f"softmax and av (flash, unfused)")
        self.model, self.gpus, self.replicas = probe.model, model.gpus, probe.replicas
        self._head_blocks = frozenset(b.name for b in probe.blocks if any(o.part == HEAD for o in b.ops))
        # the kernels a GPU runs in an iteration (one pass through every stage): what the host launches one by one
        # where it does not replay a CUDA graph (Engine.host_launch_s)
        self.launches = sum(len(b.kernels) * b.count for b in probe.blocks)
        # each part is traced once a third size misses (Traced's plain_first): a search meets the one-token iteration
        # once a layout, and a steady state few attention shapes; the token and head parts are kept as tables (a
        # search asks for thousands of token counts and rows close together)
        self._tokens = Tabled(Traced(self._token_part, ("tokens",), plain_first=2))
        self._head = Tabled(Traced(self._head_part, ("rows",), plain_first=2))
        self._attention = Traced(lambda queries, past: self._attention_part(1, queries, past), ("queries", "past"),
                                 plain_first=2)
        # (queries, past) -> one sequence's attention work: its labels (one tuple per label set, shared), their
        # values as an array, and the kernels' counts
        self._per_sequence: dict[tuple[int, int], tuple[tuple, np.ndarray, dict]] = {}
        self._label_sets: dict[tuple, tuple] = {}
        # every attention label met, as a column: a label set's columns, and for each number of queries a table of one
        # sequence's work by past (a row a past, filled as pasts are met), so that many sequences' work is a gather
        self._columns: dict = {}
        self._set_columns: dict[int, np.ndarray] = {}  # by the identity of a label set
        self._tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # queries -> (values, filled)
        self._table_labels: dict[int, dict] = {}  # queries -> the labels of its table's rows, and their columns
        self._kernel_counts: dict = {}  # each attention kernel's count (label (block, kernel, "count")), fixed

    @classmethod
    def of(cls, build, plan: FusionPlan, hw: Hardware) -> "IterationPricer":
        """A pricer of this model, plan and GPU, kept for the next call with the same ones (the same `build`, plan and
        hardware objects): what it has traced and tabled serves every later run, as a search's repeated calls want."""
        key = (getattr(build, "__func__", build), id(getattr(build, "__self__", build)), id(plan), id(hw))
        held = _PRICERS.get(key)
        if held is not None and held.build == build and held.plan is plan and held.hw is hw:
            _PRICERS.move_to_end(key)
            return held
        pricer = _PRICERS[key] = cls(build, plan, hw)
        while len(_PRICERS) > KEPT_PRICERS:
            _PRICERS.popitem(last=False)
        return pricer

    @property
    def lanes(self) -> int:
        """Batches an engine keeps in flight: one a pipeline stage (vLLM's batch queue), else one."""
        return len(self.stages) or 1

    # -- the parts, as traced functions of sizes ----------------------------------------------------------------------
    def _token_part(self, tokens) -> dict:
        """Every kernel but attention and the head, for `tokens` new tokens stacked (one prompt of that length)."""
        return self._kernels(Phase.prefill(1, tokens), lambda ops, parts: not _attends(ops[0]) and parts != {HEAD})

    def _head_part(self, rows) -> dict:
        """The head's kernels for `rows` sampling rows (a decode step of that batch: one position each), from the
        blocks that hold them alone (the other blocks' costs would be traced and replayed for nothing)."""
        return self._kernels(Phase.decode(rows, 1), lambda ops, parts: parts == {HEAD}, self._head_blocks)

    def _kernels(self, phase: Phase, keep, blocks: frozenset[str] | None = None) -> dict:
        """The kernels `keep` keeps (given their ops and the parts those belong to) of the model at `phase` (of the
        `blocks` named, where given): their times summed, by kernel class, and by block where there are stages."""
        out = {"expected_s": 0.0, "roofline_s": 0.0}
        for b in block_costs(_flat(self.build(phase)), self.plan, self.hw, blocks):
            for k in b.kernel_costs():
                ops = [b.graph.ops[n] for n in k.ops]
                if keep(ops, {op.part for op in ops}):
                    out["expected_s"] += b.count * k.cost.expected_s
                    out["roofline_s"] += b.count * k.cost.time_s
                    out[k.kind] = out.get(k.kind, 0.0) + b.count * k.cost.expected_s
                    if self.stages:
                        for f, v in (("expected_s", k.cost.expected_s), ("roofline_s", k.cost.time_s)):
                            out[(BLOCK, b.name, f)] = out.get((BLOCK, b.name, f), 0.0) + b.count * v
        return out

    def _attention_part(self, batch, queries, past) -> dict:
        """Each attention kernel's work for `batch` sequences of `queries` new tokens over `past` cached ones, by
        (block, kernel, class, field), with its roofline."""
        phase = Phase("prefill" if queries > 1 else "decode", batch, queries, past)
        out = {}
        for b in block_costs(_flat(self.build(phase)), self.plan, self.hw):
            rooflines = {o.name: o.cost for o in b.ops}
            for k in b.kernel_costs():
                ops = [b.graph.ops[n] for n in k.ops]
                if not _attends(ops[0]):
                    continue
                kind, works = kernel_work(ops, rooflines, self.hw)
                out[(b.name, k.name, "kind", kind)] = 1
                for w in works:
                    for f in WORK:
                        out[(b.name, k.name, w.kind, f)] = getattr(w, f)
                out[(b.name, k.name, "roofline_s")] = k.cost.time_s
                out[(b.name, k.name, "count")] = b.count
        return out

    # -- one iteration -----------------------------------------------------------------------------------------------
    def price(self, decode_contexts: Sequence[int], chunks: Sequence[tuple[int, int]] = (),
              sampling: int | None = None) -> Iteration:
        """An iteration of one decode token for each context in `decode_contexts` (tokens already cached) and the
        prompt chunks `chunks`, each (new tokens, tokens of that prompt already cached). `sampling`: rows that
        sample a token (default: the decodes plus every chunk, as if each ended its prompt)."""
        if not decode_contexts and not chunks:
            raise OpgraphError("an iteration needs at least one decode token or prompt chunk")
        tokens = len(decode_contexts) + sum(q for q, _ in chunks)
        count = len(decode_contexts) + len(chunks)
        return self._price(tokens, count if sampling is None else sampling, decode_contexts,
                           [(1, (q, p)) for q, p in chunks])

    def price_mix(self, tokens: int, rows: int, groups: Sequence[tuple[float, tuple[int, int]]]) -> Iteration:
        """An iteration of `tokens` new tokens stacked, `rows` of them sampling, whose attention is that of `weight`
        sequences of each (queries, past) in `groups` (a weight need not be whole: the mean mix of a steady state)."""
        return self._price(tokens, rows, (), groups)

    def _price(self, tokens: int, rows: int, decodes: Sequence[int],
               groups: Sequence[tuple[float, tuple[int, int]]]) -> Iteration:
        """price_mix, with one decode sequence at each past in `decodes` beside `groups`."""
        token = self._tokens(tokens)
        by_class = {k: v for k, v in token.items() if isinstance(k, str) and k not in ("expected_s", "roofline_s")}
        expected, roofline = token["expected_s"], token["roofline_s"]
        blocks = {k: v for k, v in token.items() if isinstance(k, tuple)}  # pipelines: per block, to sum by stage
        if rows:
            head = self._head(rows)
            expected, roofline = expected + head["expected_s"], roofline + head["roofline_s"]
            for k, v in head.items():
                if isinstance(k, tuple):
                    blocks[k] = blocks.get(k, 0.0) + v
                elif k not in ("expected_s", "roofline_s"):
                    by_class[k] = by_class.get(k, 0.0) + v
        # Attention's work is each sequence's (its FLOPs and bytes do not depend on the others'), summed: one
        # sequence's work at each (queries, past), replayed once and kept (a run meets each context many times)
        by_labels: dict[int, tuple[tuple, list, list]] = {}  # by the identity of a label set (shared tuples)
        got: dict = {}
        if decodes:  # one decode each: their rows of the table of decodes by past, summed at once
            index = np.fromiter(decodes, dtype=np.int64, count=len(decodes))
            total = self._table_rows(1, index).sum(axis=0)
            columns = self._columns_of(1)
            got.update(self._kernel_counts)
            got.update(zip(columns, total[list(columns.values())].tolist()))
        for weight, g in groups:
            labels, values, counts = self._work(g)
            got.update(counts)
            weights, vectors = by_labels.setdefault(id(labels), (labels, [], []))[1:]
            weights.append(weight)
            vectors.append(values)
        for labels, weights, vectors in by_labels.values():  # the groups' work, weighted and summed, in one product
            total = np.asarray(weights, dtype=float) @ np.array(vectors)
            for label, v in zip(labels, total.tolist()):
                got[label] = got.get(label, 0.0) + v
        expected, roofline = self._with_attention(expected, roofline, by_class, got, blocks)
        return Iteration(expected, roofline, by_class, tokens)

    def _pipelined(self, through, blocks: dict, field: str):
        """A batch's step through a pipeline of P stages with P batches in flight (one a stage, as vLLM's batch queue
        keeps them), each taken to be like this one: its pass through every stage, or P times its slowest stage,
        whichever is longer (the busiest stage works through all P batches). Numbers or arrays (many iterations)."""
        slowest = functools.reduce(maximum, (sum(blocks.get((BLOCK, name, field), 0.0) * n / self._counts[name]
                                                 for name, n in counts) for counts in self.stages))
        return maximum(through, len(self.stages) * slowest)

    def _columns_of(self, queries: int) -> dict:
        """Every label (and its column) of the sequences met at `queries` so far: a label of another set than a
        sequence's is 0 in its row."""
        return self._table_labels.setdefault(queries, {})

    def _table_rows(self, queries: int, pasts: np.ndarray) -> np.ndarray:
        """One sequence's attention work at `queries` over each of `pasts`, a row each, in the columns of every
        label met so far."""
        return self._filled(queries, pasts)[pasts]

    def _filled(self, queries: int, pasts: np.ndarray) -> np.ndarray:
        """The table of one sequence's attention work at `queries` by past (a row a past, a column a label), filled
        (and grown) for `pasts`."""
        values, filled = self._tables.get(queries, (np.zeros((0, len(self._columns))), np.zeros(0, dtype=bool)))
        top = int(pasts.max()) + 1 if len(pasts) else 0
        if top > len(filled):  # grow, doubling
            size = max(top, 2 * len(filled), 1024)
            grown, more = np.zeros((size, values.shape[1])), np.zeros(size, dtype=bool)
            grown[:len(values)], more[:len(filled)] = values, filled
            values, filled = grown, more
        missing = np.unique(pasts[~filled[pasts]])
        def place(where, labels: tuple, rows) -> None:  # rows of work under `labels` into the table at `where`
            nonlocal values
            columns = self._label_columns(labels)
            values = self._widened(values)
            values[where, columns], filled[where] = rows, True
            self._columns_of(queries).update(zip(labels, columns.tolist()))

        if len(missing) > 2:  # many pasts: one replay of the traced attention over all of them, as a sweep does
            work = self._attention.many(queries=np.full(len(missing), queries), past=missing)
            labels = tuple(k for k in work if k[-1] != "count")
            labels = self._label_sets.setdefault(labels, labels)
            # a model with no attention (a draft head of a Mamba or MLP layer) has no work to place: no columns
            rows = np.stack([work[k] for k in labels], axis=1) if labels else np.zeros((len(missing), 0))
            place(missing[:, None], labels, rows)
            self._kernel_counts.update((k, v.max()) for k, v in work.items() if k[-1] == "count")
            missing = missing[:0]
        for past in missing.tolist():
            labels, row, counts = self._work((queries, past))
            place(past, labels, row)
            self._kernel_counts.update(counts)
        self._tables[queries] = values, filled
        return values

    def _widened(self, values: np.ndarray) -> np.ndarray:
        """`values` with a column of zeros for each label met since it was made."""
        more = len(self._columns) - values.shape[1]
        return np.hstack([values, np.zeros((len(values), more))]) if more else values

    def _label_columns(self, labels: tuple) -> np.ndarray:
        columns = self._set_columns.get(id(labels))
        if columns is None:
            columns = self._set_columns[id(labels)] = np.array(
                [self._columns.setdefault(label, len(self._columns)) for label in labels], dtype=np.int64)
        return columns

    def _work(self, g: tuple[int, int]) -> tuple[tuple, np.ndarray, dict]:
        """One sequence's attention work at (queries, past), replayed once and kept."""
        work = self._per_sequence.get(g)
        if work is None:
            work = self._per_sequence[g] = self._sequence_work(g)
        return work

    def _sequence_work(self, g: tuple[int, int]) -> tuple[tuple, np.ndarray, dict]:
        """One sequence's attention work at (queries, past), split into its summed labels (as an array) and counts."""
        work = self._attention(*g)
        labels = tuple(label for label in work if label[-1] != "count")
        labels = self._label_sets.setdefault(labels, labels)  # one tuple per label set: groups compare by identity
        return (labels, np.array([float(work[label]) for label in labels]),
                {label: v for label, v in work.items() if label[-1] == "count"})

    def decodes(self, count: int, context: int) -> Iteration:
        """A decode-only iteration of `count` requests, each at `context` cached tokens."""
        return self.price_mix(count, count, [(count, (1, context))])

    def prompt_chunks(self, prompt: int, budget: int, count: int = 1, cached: int = 0, unit: int = 1) -> list[float]:
        """Expected seconds of each iteration of prompts alone: `count` whole prompts in one iteration when a prompt's
        new tokens fit the token `budget`, else one prompt in chunks of the budget (down to a whole multiple of `unit`
        tokens, the engine's chunk unit; the last whatever is left), an iteration each (the last one samples).
        `cached`: its first tokens already in the KV cache (a shared prefix), attended to, not computed."""
        new = prompt - cached
        if new <= budget:
            return [self.price_mix(count * new, count, [(count, (new, cached))]).expected_s]
        stride = budget // unit * unit
        # chunks of `stride` tokens while more than the budget is left, then the rest whole
        chunks = [(stride, j) for j in range(cached, prompt - budget, stride)]
        last = cached + len(chunks) * stride
        chunks.append((prompt - last, last))
        return [self.price_mix(n, int(n + j == prompt), [(1, (n, j))]).expected_s for n, j in chunks]

    def _attention_time(self, got: dict, blocks: dict) -> tuple:
        """Each attention kernel of the iteration: its groups' work summed per class, priced as one kernel a layer
        (added to `blocks`, each block's times, where the model has pipeline stages). The work may be numbers (one
        iteration) or arrays (an iteration a position); a kernel with no work in an iteration takes no time in it."""
        kernels: dict[tuple[str, str], dict] = {}
        for label, values in got.items():
            kernels.setdefault(label[:2], {})[label[2:]] = values
        tm, expected, roofline, by_class = self.hw.timing, 0.0, 0.0, {}
        for (block, _), fields in kernels.items():
            count, roof = fields[("count",)], fields[("roofline_s",)]
            present = {label[1]: v > 0 for label, v in fields.items() if label[0] == "kind"}
            one = not any(isinstance(p, np.ndarray) for p in present.values())  # an iteration, or many
            kinds = sorted(k for k, p in present.items() if p) if one else sorted(present)
            if not kinds:
                continue
            classes = sorted({label[0] for label in fields if len(label) == 2 and label[1] == "compute_s"})
            if tm.calibrated:
                works = [KernelWork(c, **{f: fields[(c, f)] for f in WORK}) for c in classes]
                # one kernel a layer: the class the report gives it, prefill attention's if any chunk makes it so
                order = [PREFILL_KIND] * (PREFILL_KIND in kinds) + [k for k in kinds if k != PREFILL_KIND]
                time = expected_fused(tm, works, order[0] if one else order[-1])[0]
                if not one:  # iteration by iteration: the first kind of `order` it has; none: no work, no time
                    for kind in reversed(order[:-1]):
                        time = np.where(present[kind], expected_fused(tm, works, kind)[0], time)
                    time = np.where(functools.reduce(np.logical_or, present.values()), time, 0.0)
            else:
                time = roof
            expected = expected + count * time
            roofline = roofline + count * roof
            if self.stages:
                for f, v in (("expected_s", count * time), ("roofline_s", count * roof)):
                    key = (BLOCK, block, f)
                    blocks[key] = blocks.get(key, 0.0) + v
            share = {c: fields[(c, "compute_s")] + fields[(c, "memory_s")] for c in classes}
            total = sum(share.values())
            for c in classes:
                part = (share[c] / total if total else 1 / len(classes)) if one else \
                    np.divide(share[c], total, out=np.full(np.shape(total), 1 / len(classes)), where=total != 0)
                by_class[c] = by_class.get(c, 0.0) + count * time * part
        return expected, roofline, by_class

    # -- many iterations at once -------------------------------------------------------------------------------------
    def price_columns(self, tokens: np.ndarray, rows: np.ndarray, decodes: tuple = ((), ()), queries: int = 1,
                      chunks: tuple = ((), (), ())) -> tuple[np.ndarray, np.ndarray, dict]:
        """Many iterations at once, as columns: iteration i stacks tokens[i] new tokens, rows[i] of them sampling
        (none: no head); `decodes` (iteration, past) arrays: a sequence of `queries` new tokens over `past` cached ones
        in that iteration, one a pair (a decode, or a speculative step's verify); `chunks` (iteration, new tokens,
        past) arrays: a prompt's chunk. Returns (expected seconds, roofline seconds, expected seconds by kernel
        class), an array each, every iteration's equal to price()'s for its mix; the sizes are evaluated once each
        (the token work at each distinct token count, one sequence's attention at each past), as a sweep replays."""
        tokens, rows = np.asarray(tokens, dtype=np.int64), np.asarray(rows, dtype=np.int64)
        n = len(tokens)
        expected, roofline, by_class, blocks = np.zeros(n), np.zeros(n), {}, {}

        def add(part: dict, where) -> None:
            nonlocal expected, roofline
            for label, v in part.items():
                column = np.zeros(n)
                column[where] = v
                if label == "expected_s":
                    expected = expected + column
                elif label == "roofline_s":
                    roofline = roofline + column
                else:
                    into = blocks if isinstance(label, tuple) else by_class
                    into[label] = into.get(label, 0.0) + column

        distinct, at = np.unique(tokens, return_inverse=True)
        add({k: v[at] for k, v in _many(self._tokens.traced, "tokens", distinct).items()}, slice(None))
        sampling = rows > 0
        if sampling.any():
            distinct, at = np.unique(rows[sampling], return_inverse=True)
            add({k: v[at] for k, v in _many(self._head.traced, "rows", distinct).items()}, sampling)
        work, used = np.zeros((n, 0)), {}
        where, pasts = (np.asarray(a, dtype=np.int64) for a in decodes)
        if len(where):
            table = self._filled(queries, pasts)
            used.update(self._columns_of(queries))
            work = np.zeros((n, table.shape[1]))
            filled = np.flatnonzero(self._tables[queries][1])
            count = np.bincount(where, minlength=n).astype(float)
            summed = np.bincount(where, weights=pasts.astype(float), minlength=n)
            for j in set(used.values()):
                column = np.ascontiguousarray(table[:, j])
                line = _line(filled, column[filled])
                if line is None:  # one gather from the table's column, one sum by iteration
                    work[:, j] = np.bincount(where, weights=column[pasts], minlength=n)
                else:  # a straight line in the past (attention's FLOPs and bytes): its sum is the pasts' sum
                    work[:, j] = line[0] * count + line[1] * summed
        where, news, pasts = (np.asarray(a, dtype=np.int64) for a in chunks)
        if len(where):
            shapes, at = np.unique(np.stack([news, pasts]), axis=1, return_inverse=True)
            vectors = []
            for q, p in shapes.T.tolist():
                labels, values, counts = self._work((q, p))
                self._kernel_counts.update(counts)
                columns = self._label_columns(labels)
                used.update(zip(labels, columns.tolist()))
                vectors.append((columns, values))
            work = self._widened(work)
            rows_of = np.zeros((len(vectors), len(self._columns)))
            for i, (columns, values) in enumerate(vectors):
                rows_of[i, columns] = values
            np.add.at(work, where, rows_of[at.ravel()])
        got = dict(self._kernel_counts)
        got.update((label, work[:, j]) for label, j in used.items())
        expected, roofline = self._with_attention(expected, roofline, by_class, got, blocks)
        return expected, roofline, by_class

    def _with_attention(self, expected, roofline, by_class: dict, got: dict, blocks: dict) -> tuple:
        """The times of the rest of an iteration (numbers, or arrays of iterations) with its attention kernels' added
        (to `by_class` too), through the pipeline's stages where the model has them."""
        a_expected, a_roofline, a_class = self._attention_time(got, blocks)
        for k, v in a_class.items():
            by_class[k] = by_class.get(k, 0.0) + v
        expected, roofline = expected + a_expected, roofline + a_roofline
        if self.stages:
            expected, roofline = (self._pipelined(total, blocks, f) for total, f in
                                  ((expected, "expected_s"), (roofline, "roofline_s")))
        return expected, roofline
