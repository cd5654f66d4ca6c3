"""What the API server checks on apply, in CEL, from the same patterns ``tycho.api.validation``
uses (``tycho.api.schema``, ``tycho.api.references``), so ``kubectl apply --dry-run=server``
and ``tycho validate`` give the same answer: a GitOps user sees a red apply, not a green one
followed by an Invalid pipeline. A cluster test applies the corpus of bad manifests
(tests/unit/api/bad_manifests) to a real API server.

Two homes on the server, by what CEL can see there:
- the CRD's ``x-kubernetes-validations`` (``STAGE``, ``RESOURCES``...: the models carry
  them, ``tycho crd`` renders them): typed fields, with a cost the API server budgets
  from the schema's bounds before it accepts the CRD;
- the chart's ValidatingAdmissionPolicy (``MANIFEST``, rendered into
  charts/tycho/files/manifest-rules.yaml by ``tycho crd --admission-rules``): what CRD rules
  cannot reach, because the schema leaves it untyped (outputs given as a name or an
  object, params and sweep values of any scalar type), and the string patterns whose
  budgeted cost over 100 stages is too high for a CRD (URLs, secrets in literals).

What CEL cannot express stays with the operator, which refuses it before any Job exists:
a cycle between stages (a graph search) and a grid smaller than its trial count (a
product over a map).
"""

from __future__ import annotations

import pydantic

from tycho.api import grammar, references


def rule(expression: str, message: str, field_path: str | None = None) -> pydantic.JsonValue:
    """A CEL ``x-kubernetes-validations`` rule the API server checks on apply."""
    out: dict[str, pydantic.JsonValue] = {"rule": expression, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


def rules(*items: pydantic.JsonValue) -> dict[str, pydantic.JsonValue]:
    """``json_schema_extra`` carrying rules."""
    return {"x-kubernetes-validations": list(items)}


def _quote(pattern: str) -> str:
    """A regular expression as a CEL string literal (single-quoted, backslashes doubled)."""
    return "'" + pattern.replace("\\", "\\\\").replace("'", "\\'") + "'"


def check(expression: str, message: str) -> pydantic.JsonValue:
    """One validation of the admission policy (``object`` is the pipeline)."""
    return {"expression": expression, "message": message, "reason": "Invalid"}


def _url(v: str, where: str, schemes: tuple[str, ...], default: str | None = None) -> list[tuple[str, str]]:
    """The URL checks of ``references.url`` on the string ``v``: (expression, message)."""
    ok = f"{v} == {_quote(default)} || " if default else ""
    allowed = ", ".join(f"{s}://" for s in schemes)
    return [
        (f"{ok}{v}.startsWith('/') || {v}.matches({_quote(references.scheme_pattern(schemes))})",
         f"{where} must be an absolute path or a URL with one of the schemes {allowed}"),
        (f"{ok}!{v}.matches({_quote(references.URL_RELATIVE_FILE)})",
         f"{where} is a relative file:// path: give an absolute file:///PATH"),
        (f"!{v}.matches({_quote(references.URL_CREDENTIALS)})",
         f"{where} holds credentials (user:password@): remove them, stores get credentials from a Secret"),
        (f"!{v}.matches({_quote(references.URL_SECRET_QUERY)})",
         f"{where} carries a signature or token in its query: grant access through credentials instead"),
        (f"!{v}.matches({_quote(references.URL_CLIMBS)})", f"{where} climbs with '..': give the path without it"),
    ]


def _quantity(field: str) -> list[pydantic.JsonValue]:
    """``self.<field>`` is a positive Kubernetes quantity (``validation.quantity_value``)."""
    v = f"self.{field}"
    return [rule(f"!has({v}) || (type({v}) == string ? {v}.matches({_quote(grammar.QUANTITY)}) && "
                 f"quantity({v}).isGreaterThan(quantity('0')) : int({v}) > 0)",
                 f"{field} must be a positive Kubernetes quantity such as 500m or 2 (cpu), 512Mi or 2Gi (memory)",
                 f".{field}")]


ENV_VAR = [
    rule("has(self.value) != has(self.valueFrom)", "set exactly one of value and valueFrom"),
    rule("!self.name.startsWith('TYCHO_')", "the prefix TYCHO_ is reserved: rename the variable", ".name"),
]

STAGE_INPUT = [
    rule("has(self.from) != has(self.url)", "set exactly one of from (STAGE/OUTPUT) and url (external data)"),
    rule("!has(self.from) || !has(self.sha256)", "sha256 applies to url inputs only: remove it", ".sha256"),
]

RESOURCE_LIST = [*_quantity("cpu"), *_quantity("memory")]

RESOURCES = [
    *_quantity("cpu"), *_quantity("memory"),
    *[rule(f"!has(self.{q}) || !((has(self.requests) && has(self.requests.{q})) || "
           f"(has(self.limits) && has(self.limits.{q})))",
           f"{q} is given both as a shorthand and in requests/limits: use one", f".{q}") for q in ("cpu", "memory")],
    *[rule(f"!(has(self.requests) && has(self.requests.{q}) && has(self.limits) && has(self.limits.{q})) || "
           f"!quantity(string(self.requests.{q})).isGreaterThan(quantity(string(self.limits.{q})))",
           f"requests.{q} is above limits.{q}: lower the request or raise the limit", ".requests")
      for q in ("cpu", "memory")],
]

SWEEP_PARAMETER = [
    rule("has(self.low) == has(self.high)", "a range needs both low and high"),
    rule("!has(self.low) || !has(self.high) || self.low < self.high", "low must be below high", ".low"),
    rule("!has(self.low) || !self.log || self.low > 0.0", "a log range needs low > 0", ".low"),
    rule("!has(self.low) || self.type != 'int' || (self.low == double(int(self.low)) && "
         "self.high == double(int(self.high)))", "an int range needs whole-number bounds"),
]

STAGE = [
    rule("!has(self.inputs) || self.inputs.all(i, !has(i.from) || !i.from.startsWith(self.name + '/'))",
         "a stage cannot read its own output: read it from an earlier stage", ".inputs"),
    rule(f"!self.image.contains('@sha256:') || self.image.matches({_quote(references.IMAGE_DIGEST)})",
         "a sha256 image digest has 64 lowercase hex digits", ".image"),
]

SPEC = [
    rule("self.stages.all(s, !has(s.inputs) || s.inputs.all(i, !has(i.from) || "
         "self.stages.exists(t, i.from.startsWith(t.name + '/'))))",
         "every inputs[].from must name a stage of this pipeline as STAGE/OUTPUT", ".stages"),
]

PIPELINE = [
    rule(f"self.spec.stages.all(s, size(self.metadata.name) + 1 + size(s.name) <= {grammar.JOB_NAME_BUDGET})",
         f"pipeline and stage names together are too long for Job names ({grammar.JOB_NAME_BUDGET} characters): "
         "shorten the pipeline or a stage name"),
]


def _out(o: str) -> str:
    """An outputs[] item's name: the item itself, or its ``name``."""
    return f"(type({o}) == string ? {o} : {o}.name)"


_STAGES = "object.spec.stages"
_SECRET_LITERAL = (f"e.name.matches({_quote(references.SECRET_NAME)}) && size(e.value) >= "
                   f"{references.SECRET_MIN_LENGTH} && !e.value.startsWith('/') && !e.value.startsWith('file:') || "
                   f"e.value.matches({_quote(references.SECRET_VALUE)})")

MANIFEST = [
    check(f"{_STAGES}.all(s, !has(s.outputs) || s.outputs.all(o, {_out('o')}.matches({_quote(grammar.FILE_NAME)})))",
          "spec.stages[].outputs[]: output names are file names (letters, digits, '_', '.', '-'; no '/', not "
          "starting with '.')"),
    check(f"{_STAGES}.all(s, !has(s.outputs) || s.outputs.all(o, s.outputs.exists_one(p, {_out('p')} == "
          f"{_out('o')})))", "spec.stages[].outputs[]: name each output of a stage once"),
    check(f"{_STAGES}.all(s, !has(s.inputs) || s.inputs.all(i, !has(i.from) || {_STAGES}.exists(t, has(t.outputs) "
          f"&& t.outputs.exists(o, i.from == t.name + '/' + {_out('o')}))))",
          "spec.stages[].inputs[].from must name an output its stage declares"),
    check(f"{_STAGES}.all(s, !has(s.params) || s.params.all(k, s.params[k] != null && type(s.params[k]) != map && "
          "(type(s.params[k]) != list || s.params[k].all(v, type(v) == type(s.params[k][0]) && type(v) != list && "
          "type(v) != map))))",
          "spec.stages[].params: a param is a bool, int, float, string, or a list of one of those types"),
    check(f"{_STAGES}.all(s, !has(s.sweep) || s.sweep.parameters.all(k, has(s.sweep.parameters[k].values) != "
          "(has(s.sweep.parameters[k].low) || has(s.sweep.parameters[k].high))))",
          "spec.stages[].sweep.parameters: give each either values or low and high"),
    check(f"{_STAGES}.all(s, !has(s.sweep) || s.sweep.algorithm != 'grid' || "
          "s.sweep.parameters.all(k, has(s.sweep.parameters[k].values)))",
          "spec.stages[].sweep.algorithm: grid search needs values for every parameter (or use random or tpe)"),
    check(f"{_STAGES}.all(s, !has(s.sweep) || !has(s.params) || s.sweep.parameters.all(k, !(k in s.params) || "
          "!has(s.sweep.parameters[k].values) || s.sweep.parameters[k].values.all(v, type(v) == type(s.params[k]) "
          "|| (type(s.params[k]) == double && type(v) == int))))",
          "spec.stages[].sweep.parameters[].values must have the type of the param they replace"),
    check(f"{_STAGES}.all(s, !has(s.env) || s.env.all(e, !has(e.value) || e.value.trim() == '' || "
          f"!({_SECRET_LITERAL})))",
          "spec.stages[].env[].value looks like a secret: store it in a Secret and use valueFrom.secretKeyRef "
          "(literals are recorded in provenance and the cache key)"),
    *[check(f"!has(object.spec.storage) || !has(object.spec.storage.url) || ({expression})", message)
      for expression, message in _url("object.spec.storage.url", "spec.storage.url", references.STORE_SCHEMES,
                                       default=references.DEFAULT_STORE_URL)],
    *[check(f"{_STAGES}.all(s, !has(s.inputs) || s.inputs.all(i, !has(i.url) || ({expression})))", message)
      for expression, message in _url("i.url", "spec.stages[].inputs[].url", references.INPUT_SCHEMES)],
]
"""The validations of the chart's admission policy for every pipeline (charts/tycho/files/
manifest-rules.yaml, generated: ``make crd``)."""
