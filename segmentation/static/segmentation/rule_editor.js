/**
 * The rule editor of a segment: jQuery QueryBuilder (vendor/jquery-querybuilder) showing the
 * criteria language of API.md as groups and conditions, with a live count. No build step.
 *
 * The page embeds (#rule-editor-config, Django's json_script):
 *   catalog      {attributes: [{name, label, group, type, ops, choices: [{value, label}]}],
 *                 events: [{name, label, numeric_properties, distinct_properties}],
 *                 aggregates, property_aggregates, aggregate_ops, max_within_days,
 *                 segments: [{key, name, kind}]}: what a condition may test (criteria.py's)
 *   errors       [{attr, detail}]: the service's errors of the last save, by path
 *   preview_url  the admin view that counts who matches (POST {rules, segment})
 *   segment_key  the segment being edited (null when adding)
 *   customer_url the admin page of customer 0, for links from the sample
 *   readonly     true when the user may only look
 * and the rules as JSON in the hidden input named by the editor's `data-input`.
 *
 * The builder's model and the language (both ways, so stored rules load exactly and saving
 * without a change writes the same JSON):
 *   group {condition: AND|OR, not: false}      ↔ {"all": [...]} | {"any": [...]}
 *   group {condition, not: true}               ↔ {"not": {"all"|"any": [...]}}
 *   group {not: true, data: {not_of: "condition"}} with one child ↔ {"not": <that child>}
 *   root  {data: {root: "condition"}} with one child ↔ that child alone (a rule of one test)
 *   rule  filter attribute:<name>, operator op, value      ↔ {"attribute", "op", "value"?}
 *   rule  filter event:<name>, operator op, value,
 *         data {aggregate, property, within_days}          ↔ {"event", "aggregate", "property",
 *                                                              "within_days", "op", "value"?}
 *   rule  filter segment, operator in_segment|not_in_segment, value key
 *                                                         ↔ {"segment"} | {"not": {"segment"}}
 * A condition whose test is not chosen yet is left out. The event's aggregate, property and
 * window live in the rule's `data` and render between the test and the comparison; value
 * inputs follow the attribute's type and the comparison (checkboxes for "is one of" a choice,
 * one value per line for lists of texts or numbers).
 *
 * Every change writes the rules into the hidden input and, 300 ms after the last one, asks the
 * preview view how many customers match. Errors (of the preview or of the last save) come by
 * path (`rules.all[1].value`) and mark the condition or group at that path.
 */

const $ = window.django.jQuery;
const editor = document.querySelector(".rule-editor");
const config = JSON.parse(document.getElementById("rule-editor-config").textContent);
const input = document.getElementById(editor.dataset.input);
const $builder = $(editor.querySelector(".rule-editor-builder"));
const status = editor.querySelector(".rule-preview-status");
const errorList = editor.querySelector(".rule-preview-errors");
const sample = editor.querySelector(".rule-preview-sample");
const notice = editor.querySelector(".rule-editor-notice");

const PREVIEW_DELAY_MS = 300;
const ALL_TYPES = ["string", "number", "datetime", "boolean"];
const LIST_OPS = ["in", "not_in"];
const PROPERTY_AGGREGATES = config.catalog.property_aggregates;
const AGGREGATE_OPS = config.catalog.aggregate_ops;
const ALL_OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists"];
const AGGREGATE_LABELS = {
  count: "number of events",
  sum: "total of",
  avg: "average of",
  min: "smallest",
  max: "largest",
  distinct: "number of different",
  last_seen_days: "days since the last one",
};
const WINDOWS = [
  ["", "ever"],
  ["1", "today"],
  ["7", "in the last 7 days"],
  ["30", "in the last 30 days"],
  ["90", "in the last 90 days"],
  ["365", "in the last 365 days"],
  ["custom", "in the last … days"],
];
const OP_LABELS = {
  eq: "is",
  ne: "is not",
  gt: "is more than",
  gte: "is at least",
  lt: "is less than",
  lte: "is at most",
  in: "is one of",
  not_in: "is none of",
  contains: "contains",
  exists: "has a value",
  in_segment: "in segment",
  not_in_segment: "not in segment",
};
const TIME_OP_LABELS = { gt: "is after", gte: "is on or after", lt: "is before", lte: "is on or before" };
const FILTER_GROUPS = {
  customer: "Customer",
  attributes: "Customer attributes",
  behaviour: "Behaviour (events)",
  segments: "Segments",
};

// --- Small helpers ------------------------------------------------------------------------------
const esc = (value) =>
  String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
const isGroup = (node) => Array.isArray(node.rules);
const only = (node, key) => isObject(node) && Object.keys(node).length === 1 && key in node;

/** `h("select", {"aria-label": "Measure", onchange: fn}, ...children)`; falsy props skipped. */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  let value;
  for (const [key, prop] of Object.entries(props)) {
    if (prop === undefined || prop === null || prop === false) continue;
    if (key === "class") el.className = prop;
    else if (key === "value") value = prop;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), prop);
    else el.setAttribute(key, prop === true ? "" : prop);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      el.append(child instanceof Node ? child : String(child));
    }
  }
  if (value !== undefined) el.value = value; // after the children: a select needs its options
  return el;
}

/** Object with sorted keys, for comparing two rules as JSON. */
function canonical(value) {
  if (Array.isArray(value)) return value.map(canonical);
  if (!isObject(value)) return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, canonical(value[key])]),
  );
}
const sameJson = (a, b) => JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));

// --- What conditions can test -------------------------------------------------------------------
function parseInitial(text) {
  if (!text) return { rules: null };
  try {
    const rules = JSON.parse(text);
    if (rules === null || (isObject(rules) && Object.keys(rules).length === 0)) return { rules: null };
    if (!isObject(rules)) return { rules: null, problem: "The stored rule is not a condition." };
    return { rules };
  } catch {
    return { rules: null, problem: "The stored rule could not be read." };
  }
}

/** Walks a rule in the language; `visit(node)` for each condition. Tolerates any JSON. */
function walkCriteria(node, visit) {
  if (!isObject(node)) return;
  visit(node);
  for (const key of ["all", "any"]) {
    if (Array.isArray(node[key])) node[key].forEach((child) => walkCriteria(child, visit));
  }
  if ("not" in node) walkCriteria(node.not, visit);
}

/** The catalogue, plus what the stored rule names that the catalogue no longer has (a deleted
 * attribute definition, event type or segment): those still load, marked, so nothing is lost
 * and the service's error lands on them. */
function vocabulary(catalog, rules) {
  const attributes = new Map(catalog.attributes.map((a) => [a.name, a]));
  const events = new Map(catalog.events.map((e) => [e.name, e]));
  const segments = new Map(catalog.segments.map((s) => [s.key, s]));
  walkCriteria(rules, (node) => {
    if (typeof node.attribute === "string" && !attributes.has(node.attribute)) {
      attributes.set(node.attribute, {
        name: node.attribute,
        label: `${node.attribute} (unknown)`,
        group: "attributes",
        type: "unknown",
        ops: ALL_OPS,
        choices: [],
      });
    }
    if (typeof node.event === "string" && !events.has(node.event)) {
      events.set(node.event, {
        name: node.event,
        label: `${node.event} (unknown)`,
        numeric_properties: [],
        distinct_properties: [],
      });
    }
    if (typeof node.segment === "string" && !segments.has(node.segment)) {
      segments.set(node.segment, { key: node.segment, name: `${node.segment} (unknown)` });
    }
  });
  return {
    attributes: [...attributes.values()],
    events: [...events.values()],
    segments: [...segments.values()],
  };
}

// --- Value inputs: by the attribute's type and the comparison -----------------------------------
const QB_TYPES = {
  string: "string",
  enum: "string",
  integer: "integer",
  number: "double",
  boolean: "boolean",
  date: "date",
  datetime: "datetime",
  unknown: "string",
};

function valueKind(spec, op) {
  const list = LIST_OPS.includes(op);
  if (spec.kind === "segment") return "segment";
  if (spec.kind === "event") return "number";
  switch (spec.type) {
    case "enum":
      return list ? "choices" : "choice";
    case "boolean":
      return "boolean";
    case "integer":
    case "number":
      return list ? "numbers" : "number";
    case "date":
      return "date";
    case "datetime":
      return "datetime";
    case "string":
      return list ? "texts" : "text";
    default:
      return "json";
  }
}

/** A select's HTML with a blank first option: nothing is chosen until someone chooses. */
function select(name, label, entries) {
  const choices = entries.map(([value, text]) => `<option value="${esc(value)}">${esc(text)}</option>`);
  return `<select name="${name}" aria-label="${label}"><option value="">—</option>${choices.join("")}</select>`;
}

/** QueryBuilder's `input` for every filter: HTML of one `.rule-value` wrapper. */
function valueInput(rule, name) {
  const spec = rule.filter.spec;
  const kind = valueKind(spec, rule.operator.type);
  const n = esc(name);
  let inner;
  switch (kind) {
    case "number":
      inner = `<input type="number" step="any" name="${n}" aria-label="Value">`;
      break;
    case "text":
      inner = `<input type="text" name="${n}" aria-label="Value">`;
      break;
    case "texts":
    case "numbers":
      inner = `<textarea name="${n}" rows="3" cols="24" aria-label="Values, one per line"></textarea>`;
      break;
    case "choice":
      inner = select(n, "Value", spec.choices.map((c, i) => [i, c.label]));
      break;
    case "choices":
      inner =
        `<span class="rule-choices" role="group" aria-label="Values">` +
        spec.choices
          .map((c, i) => `<label><input type="checkbox" name="${n}" value="${i}"> ${esc(c.label)}</label>`)
          .join("") +
        `</span>`;
      break;
    case "boolean":
      inner = select(n, "Value", [["true", "yes"], ["false", "no"]]);
      break;
    case "date":
      inner = `<input type="date" name="${n}" aria-label="Value">`;
      break;
    case "datetime":
      inner = `<input type="datetime-local" step="1" name="${n}" aria-label="Value (UTC)">`;
      inner += ` <span class="rule-unit">UTC</span>`;
      break;
    case "segment":
      inner = select(n, "Segment", spec.segments.map((s) => [s.key, s.name]));
      break;
    default:
      inner = `<input type="text" name="${n}" aria-label="Value (JSON)">`;
  }
  return `<span class="rule-value" data-kind="${kind}">${inner}</span>`;
}

/** The choice values an input offers (its own copy: a stored value that is no longer a choice
 * is added to it, so it still shows and round-trips). */
function choiceValues(wrapper, spec) {
  const $wrapper = $(wrapper);
  if (!$wrapper.data("choices")) $wrapper.data("choices", spec.choices.map((c) => c.value));
  return $wrapper.data("choices");
}

function choiceIndex(wrapper, spec, value, add) {
  const values = choiceValues(wrapper, spec);
  let index = values.findIndex((v) => v === value);
  if (index === -1 && add) {
    values.push(value);
    index = values.length - 1;
    const name = wrapper.querySelector("[name]").name;
    const label = `${JSON.stringify(value)} (not a choice)`;
    if (wrapper.dataset.kind === "choices") {
      wrapper.firstChild.append(
        h("label", {}, h("input", { type: "checkbox", name, value: String(index) }), ` ${label}`),
      );
    } else {
      wrapper.querySelector("select").append(h("option", { value: String(index) }, label));
    }
  }
  return index;
}

const pad = (n) => String(n).padStart(2, "0");
function utcInputValue(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return (
    `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}` +
    `T${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`
  );
}

function listed(text, kind) {
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      if (kind !== "numbers") return line;
      const number = Number(line.trim());
      return Number.isFinite(number) ? number : line; // the service names what is not a number
    });
}

/** QueryBuilder's `valueGetter`: the value the inputs hold, typed; undefined when blank. */
function readValue(rule) {
  const wrapper = rule.$el.find(".rule-value-container .rule-value")[0];
  if (!wrapper) return undefined;
  const spec = rule.filter.spec;
  const control = wrapper.querySelector("input, select, textarea");
  const raw = control.value;
  switch (wrapper.dataset.kind) {
    case "number":
      return raw === "" ? undefined : Number(raw);
    case "texts":
    case "numbers":
      return listed(raw, wrapper.dataset.kind);
    case "choice":
      return raw === "" ? undefined : choiceValues(wrapper, spec)[Number(raw)];
    case "choices": {
      // Keeps the order values were stored or ticked in: an unchanged rule saves unchanged.
      const values = choiceValues(wrapper, spec);
      const ticked = [...wrapper.querySelectorAll("input:checked")].map((box) => Number(box.value));
      const order = ($(wrapper).data("order") || []).filter((i) => ticked.includes(i));
      const fresh = ticked.filter((i) => !order.includes(i));
      $(wrapper).data("order", [...order, ...fresh]);
      return [...order, ...fresh].map((i) => values[i]);
    }
    case "boolean":
      return raw === "" ? undefined : raw === "true";
    case "datetime":
      if (raw === "") return undefined;
      if (wrapper.dataset.original && raw === wrapper.dataset.shown) return wrapper.dataset.original;
      return `${raw.length === 16 ? `${raw}:00` : raw}Z`;
    case "json":
      if (raw === "") return undefined;
      try {
        return JSON.parse(raw);
      } catch {
        return raw;
      }
    default:
      return raw === "" ? undefined : raw;
  }
}

/** QueryBuilder's `valueSetter`: shows a value (stored, or set by the builder) in the inputs. */
function writeValue(rule, value) {
  const wrapper = rule.$el.find(".rule-value-container .rule-value")[0];
  if (!wrapper) return;
  const spec = rule.filter.spec;
  const control = wrapper.querySelector("input, select, textarea");
  switch (wrapper.dataset.kind) {
    case "texts":
    case "numbers":
      control.value = Array.isArray(value) ? value.join("\n") : "";
      break;
    case "choice":
      control.value = value === undefined ? "" : String(choiceIndex(wrapper, spec, value, true));
      break;
    case "choices": {
      const indexes = (Array.isArray(value) ? value : []).map((v) => choiceIndex(wrapper, spec, v, true));
      for (const box of wrapper.querySelectorAll("input")) box.checked = indexes.includes(Number(box.value));
      $(wrapper).data("order", indexes);
      break;
    }
    case "boolean":
      control.value = value === true ? "true" : value === false ? "false" : "";
      break;
    case "datetime":
      control.value = typeof value === "string" ? utcInputValue(value) : "";
      wrapper.dataset.original = typeof value === "string" ? value : "";
      wrapper.dataset.shown = control.value;
      break;
    case "segment":
      if (typeof value === "string" && ![...control.options].some((o) => o.value === value)) {
        control.append(h("option", { value }, `${value} (unknown)`));
      }
      control.value = value ?? "";
      break;
    case "json":
      control.value = value === undefined ? "" : JSON.stringify(value);
      break;
    default:
      control.value = value ?? "";
  }
}

// --- Filters and operators ----------------------------------------------------------------------
function buildFilters(words) {
  const common = { input: valueInput, valueGetter: readValue, valueSetter: writeValue, input_event: "input" };
  const filters = words.attributes.map((a) => ({
    ...common,
    id: `attribute:${a.name}`,
    label: a.label,
    optgroup: a.group,
    type: QB_TYPES[a.type] || "string",
    operators: a.ops,
    spec: { kind: "attribute", name: a.name, type: a.type, choices: a.choices || [] },
  }));
  for (const e of words.events) {
    filters.push({
      ...common,
      id: `event:${e.name}`,
      label: e.label,
      optgroup: "behaviour",
      type: "double",
      operators: AGGREGATE_OPS,
      spec: {
        kind: "event",
        name: e.name,
        numeric: e.numeric_properties,
        distinct: e.distinct_properties,
      },
    });
  }
  if (words.segments.length) {
    filters.push({
      ...common,
      id: "segment",
      label: "Membership",
      optgroup: "segments",
      type: "string",
      operators: ["in_segment", "not_in_segment"],
      spec: { kind: "segment", segments: words.segments.map((s) => ({ key: s.key, name: s.name })) },
    });
  }
  return filters;
}

// `optgroup` marks the comparisons whose value is a list: QueryBuilder re-creates the value input
// when a comparison of the other shape is chosen (one value ↔ several).
const OPERATORS = [
  ...["eq", "ne", "gt", "gte", "lt", "lte", "contains", "in_segment", "not_in_segment"].map((type) => ({
    type,
    nb_inputs: 1,
    multiple: false,
    apply_to: ALL_TYPES,
  })),
  { type: "exists", nb_inputs: 0, multiple: false, apply_to: ALL_TYPES },
  ...LIST_OPS.map((type) => ({ type, nb_inputs: 1, multiple: true, apply_to: ALL_TYPES, optgroup: "list" })),
];

function opLabel(filter, op) {
  const type = filter && filter.spec.kind === "attribute" ? filter.spec.type : null;
  if ((type === "date" || type === "datetime") && TIME_OP_LABELS[op]) return TIME_OP_LABELS[op];
  return OP_LABELS[op] || op;
}

// --- Templates (the library's markup, with labels people and screen readers can use) ----------
const TEMPLATES = {
  group: ({ group_id, level }) => `
<div id="${group_id}" class="rules-group-container" role="group">
  <div class="rules-group-header">
    <div class="group-conditions">
      <button type="button" class="rule-not" data-not="group" aria-pressed="false"
              title="Holds when the group does not">Not</button>
      <label class="rule-condition"><input type="radio" name="${group_id}_cond" value="AND"> All</label>
      <label class="rule-condition"><input type="radio" name="${group_id}_cond" value="OR"> Any</label>
      <span class="rule-group-explain"></span>
    </div>
    <div class="group-actions">
      <button type="button" class="button" data-add="rule">Add condition</button>
      <button type="button" class="button" data-add="group">Add group</button>
      ${level > 1 ? `<button type="button" class="button rule-delete" data-delete="group">Delete group</button>` : ""}
    </div>
  </div>
  <ul class="rule-errors errorlist" hidden></ul>
  <div class="rules-group-body"><div class="rules-list"></div></div>
</div>`,
  rule: ({ rule_id }) => `
<div id="${rule_id}" class="rule-container" role="group">
  <div class="rule-filter-container"></div>
  <div class="rule-measure-container"></div>
  <div class="rule-operator-container"></div>
  <div class="rule-value-container"></div>
  <div class="rule-actions">
    <button type="button" class="rule-delete" data-delete="rule" aria-label="Delete condition"
            title="Delete condition">×</button>
  </div>
  <ul class="rule-errors errorlist" hidden></ul>
</div>`,
  filterSelect: ({ rule, filters }) => {
    const groups = new Map();
    for (const filter of filters) {
      if (!groups.has(filter.optgroup)) groups.set(filter.optgroup, []);
      groups.get(filter.optgroup).push(`<option value="${esc(filter.id)}">${esc(filter.label)}</option>`);
    }
    const body = [...groups]
      .map(([group, opts]) => `<optgroup label="${esc(FILTER_GROUPS[group] || group)}">${opts.join("")}</optgroup>`)
      .join("");
    return `<select name="${rule.id}_filter" aria-label="Condition on"><option value="-1">Choose…</option>${body}</select>`;
  },
  operatorSelect: ({ rule, operators }) =>
    `<select name="${rule.id}_operator" aria-label="Comparison">${operators
      .map((op) => `<option value="${op.type}">${esc(opLabel(rule.filter, op.type))}</option>`)
      .join("")}</select>`,
  ruleValueSelect: () => "",
};

// --- An event's measure: aggregate, property and window, kept in the rule's data ----------------
function propertiesFor(spec, aggregate) {
  return aggregate === "distinct" ? spec.distinct : spec.numeric;
}

function renderMeasure(rule) {
  const container = rule.$el.find(".rule-measure-container")[0];
  container.replaceChildren();
  if (!rule.filter || rule.filter.spec.kind !== "event") return;
  const spec = rule.filter.spec;
  const data = { ...rule.data };
  const aggregate = data.aggregate ?? "count";
  const update = (changes, rerender) => {
    const next = { ...rule.data, ...changes };
    for (const key of Object.keys(next)) if (next[key] === undefined) delete next[key];
    rule.data = next;
    if (rerender) {
      renderMeasure(rule);
      container.querySelector(`[aria-label="${rerender}"]`)?.focus();
    }
    builder().trigger("rulesChanged");
  };

  const aggregates = config.catalog.aggregates.map((a) =>
    h("option", { value: a }, AGGREGATE_LABELS[a] || a),
  );
  container.append(
    h(
      "select",
      {
        class: "rule-aggregate",
        "aria-label": "Measure",
        value: aggregate,
        onchange: (event) => {
          const next = event.target.value;
          const offered = propertiesFor(spec, next);
          let property = rule.data.property;
          if (!PROPERTY_AGGREGATES.includes(next)) property = undefined;
          else if (offered.length && !offered.includes(property)) property = offered[0];
          update({ aggregate: next, property }, "Measure");
        },
      },
      aggregates,
    ),
  );

  if (PROPERTY_AGGREGATES.includes(aggregate)) {
    const offered = [...propertiesFor(spec, aggregate)];
    if (data.property !== undefined && !offered.includes(data.property)) offered.push(data.property);
    const onchange = (event) => update({ property: event.target.value || undefined });
    container.append(
      offered.length
        ? h(
            "select",
            { class: "rule-property", "aria-label": "Property", value: data.property ?? "", onchange },
            h("option", { value: "" }, "—"),
            offered.map((p) => h("option", { value: p }, p)),
          )
        : h("input", {
            type: "text",
            class: "rule-property",
            "aria-label": "Property",
            placeholder: "property",
            value: data.property ?? "",
            oninput: onchange,
          }),
    );
  }

  const days = data.within_days;
  const isPreset = WINDOWS.some(([value]) => value !== "custom" && value === String(days ?? ""));
  const custom = Boolean(data.custom_window) || !isPreset;
  container.append(
    h(
      "select",
      {
        class: "rule-window",
        "aria-label": "Time window",
        value: custom ? "custom" : String(days ?? ""),
        onchange: (event) => {
          const chosen = event.target.value;
          if (chosen === "custom") {
            update({ custom_window: true, within_days: rule.data.within_days ?? null }, "Time window");
          } else {
            const within = chosen === "" ? undefined : Number(chosen);
            update({ custom_window: undefined, within_days: within }, "Time window");
          }
        },
      },
      WINDOWS.map(([value, label]) => h("option", { value }, label)),
    ),
  );
  if (custom) {
    container.append(
      h("input", {
        type: "number",
        class: "rule-window-days",
        min: "1",
        max: String(config.catalog.max_within_days),
        step: "1",
        "aria-label": "Days",
        value: typeof days === "number" ? String(days) : "",
        oninput: (event) => {
          const raw = event.target.value;
          update({ within_days: raw === "" ? null : Number(raw) });
        },
      }),
      h("span", { class: "rule-unit" }, "days"),
    );
  }
}

// --- The language ↔ the builder's model ---------------------------------------------------------
/** Rules in the language → the JSON `setRules` takes. */
function toBuilder(rules) {
  const groupOf = (condition, children, extra = {}) => ({
    condition,
    rules: children.map(item),
    ...extra,
  });
  function item(node) {
    if (!isObject(node)) return { id: "attribute:?", operator: "eq", value: node };
    if (Array.isArray(node.all)) return groupOf("AND", node.all, { not: false });
    if (Array.isArray(node.any)) return groupOf("OR", node.any, { not: false });
    if ("not" in node) {
      const inner = node.not;
      if (only(inner, "segment")) {
        return { id: "segment", operator: "not_in_segment", value: inner.segment };
      }
      if (isObject(inner) && Array.isArray(inner.all)) return groupOf("AND", inner.all, { not: true });
      if (isObject(inner) && Array.isArray(inner.any)) return groupOf("OR", inner.any, { not: true });
      return groupOf("AND", [inner], { not: true, data: { not_of: "condition" } });
    }
    if ("event" in node) {
      const data = {};
      for (const key of ["aggregate", "property", "within_days"]) {
        if (key in node) data[key] = node[key];
      }
      return { id: `event:${node.event}`, operator: node.op, value: node.value, data };
    }
    if ("segment" in node) return { id: "segment", operator: "in_segment", value: node.segment };
    return { id: `attribute:${node.attribute}`, operator: node.op, value: node.value };
  }
  const top = item(rules);
  if (isGroup(top)) return top;
  return { condition: "AND", not: false, rules: [top], data: { root: "condition" } };
}

/** The builder's model → rules in the language, and where each path is on the page. */
function toCriteria(root) {
  const places = [];
  const place = (path, node) => places.push({ path, node });

  function condition(node, path) {
    return isGroup(node) ? group(node, path) : test(node, path);
  }
  function group(node, path) {
    place(path, node);
    const children = node.rules.filter((child) => isGroup(child) || child.filter);
    const key = node.condition === "OR" ? "any" : "all";
    if (node.not) {
      if (node.data && node.data.not_of && children.length === 1) {
        return { not: condition(children[0], `${path}.not`) };
      }
      const body = children.map((child, i) => condition(child, `${path}.not.${key}[${i}]`));
      return { not: { [key]: body } };
    }
    if (node.data && node.data.root && children.length === 1 && !node.parent) {
      return condition(children[0], path);
    }
    return { [key]: children.map((child, i) => condition(child, `${path}.${key}[${i}]`)) };
  }
  function test(rule, path) {
    place(path, rule);
    const spec = rule.filter.spec;
    const op = rule.operator ? rule.operator.type : undefined;
    const hasValue = rule.operator && rule.operator.nb_inputs > 0 && rule.value !== undefined;
    if (spec.kind === "segment") {
      const reference = { segment: rule.value ?? "" };
      return op === "not_in_segment" ? { not: reference } : reference;
    }
    if (spec.kind === "event") {
      const out = { event: spec.name };
      for (const key of ["aggregate", "property", "within_days"]) {
        if (rule.data && rule.data[key] !== undefined) out[key] = rule.data[key];
      }
      out.op = op;
      if (hasValue) out.value = rule.value;
      return out;
    }
    const out = { attribute: spec.name, op };
    if (hasValue) out.value = rule.value;
    return out;
  }
  const rules = group(root, "rules");
  const conditions = places.filter((p) => !isGroup(p.node)).length;
  return { rules, places, conditions };
}

// --- Labels: "Condition 2", "Group 3", "Condition 3.1" -----------------------------------------
function relabel(node, prefix = "") {
  node.rules.forEach((child, i) => {
    const number = `${prefix}${i + 1}`;
    child.$el.attr("aria-label", `${isGroup(child) ? "Group" : "Condition"} ${number}`);
    if (isGroup(child)) relabel(child, `${number}.`);
  });
  if (!node.parent) node.$el.attr("aria-label", "All conditions");
  const explain = node.$el.find("> .rules-group-header .rule-group-explain");
  const word = node.condition === "OR" ? "any" : "all";
  explain.text(node.not ? `— the group holds unless ${word} of these hold` : "of these must hold");
}

// --- Errors by path -----------------------------------------------------------------------------
const FIELD_SELECTORS = {
  value: ".rule-value-container",
  op: ".rule-operator-container select",
  aggregate: ".rule-aggregate",
  property: ".rule-property",
  within_days: ".rule-window, .rule-window-days",
  attribute: ".rule-filter-container select",
  event: ".rule-filter-container select",
  segment: ".rule-value-container select",
};

function clearMarks() {
  $builder.find(".has-error").removeClass("has-error");
  $builder.find("[aria-invalid]").removeAttr("aria-invalid");
  $builder.find(".rule-errors").attr("hidden", true).empty();
}

function markErrors(errors, places) {
  clearMarks();
  for (const error of errors) {
    const attr = error.attr || "rules";
    let best = null;
    for (const place of places) {
      const p = place.path;
      const inside = attr === p || attr.startsWith(`${p}.`) || attr.startsWith(`${p}[`);
      if (inside && (!best || p.length > best.path.length)) best = place;
    }
    if (!best) best = places[0];
    if (!best) continue;
    const $node = best.node.$el;
    $node.addClass("has-error");
    const field = attr.slice(best.path.length).replace(/^\.(not\.)?/, "").split(/[.[]/)[0];
    if (FIELD_SELECTORS[field] && !isGroup(best.node)) {
      const controls = "input, select, textarea";
      $node.find(FIELD_SELECTORS[field]).find(controls).addBack(controls).attr("aria-invalid", "true");
    }
    $node.children(".rule-errors").removeAttr("hidden").append(h("li", {}, error.detail));
  }
}

// --- The live count -----------------------------------------------------------------------------
let previewTimer = null;
let previewController = null;
let lastPlaces = [];

function csrfToken() {
  const field = document.querySelector("input[name=csrfmiddlewaretoken]");
  return field ? field.value : "";
}

function showStatus(text, state) {
  status.textContent = text;
  editor.dataset.preview = state;
}

function showErrors(errors) {
  errorList.replaceChildren(
    ...errors.map((e) =>
      h("li", { "data-path": e.attr }, h("code", {}, e.attr || "rules"), `: ${e.detail}`),
    ),
  );
  errorList.hidden = errors.length === 0;
}

const TIER_LABELS = Object.fromEntries(
  (config.catalog.attributes.find((a) => a.name === "loyalty_tier")?.choices || []).map((c) => [
    c.value,
    c.label,
  ]),
);

function showSample(rows) {
  const body = sample.querySelector("tbody");
  body.replaceChildren(
    ...rows.map((row) => {
      const email = row.email || `customer ${row.id}`;
      const link = config.customer_url?.replace(/\/0\/(change\/)?$/, `/${row.id}/$1`);
      return h(
        "tr",
        {},
        h("td", {}, link ? h("a", { href: link }, email) : email),
        h("td", {}, row.name || "—"),
        h("td", {}, TIER_LABELS[row.loyalty_tier] || row.loyalty_tier || "—"),
      );
    }),
  );
  sample.hidden = rows.length === 0;
}

async function preview(rules) {
  previewController?.abort();
  const controller = new AbortController();
  previewController = controller;
  showStatus("Counting…", "pending");
  let response;
  try {
    response = await fetch(config.preview_url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ rules, segment: config.segment_key }),
      signal: controller.signal,
    });
  } catch (error) {
    if (error.name !== "AbortError") showStatus("The count is unavailable right now.", "failed");
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (controller !== previewController) return; // a newer rule is being counted
  if (response.ok) {
    const count = Number(body.count);
    showStatus(`${count.toLocaleString()} customer${count === 1 ? " matches" : "s match"}`, "counted");
    showErrors([]);
    clearMarks();
    showSample(body.sample || []);
  } else if (response.status === 400) {
    showStatus("Not complete yet: see the marked conditions.", "invalid");
    const errors = body.errors?.length ? body.errors : [{ attr: "rules", detail: body.detail }];
    showErrors(errors);
    markErrors(errors, lastPlaces);
    showSample([]);
  } else {
    showStatus(`The count is unavailable right now (HTTP ${response.status}).`, "failed");
  }
}

// --- Wiring -------------------------------------------------------------------------------------
const initial = parseInitial(input.value);
const words = vocabulary(config.catalog, initial.rules);
let loading = true;
let touched = false;
let refreshQueued = false;

function builder() {
  return $builder[0].queryBuilder;
}

function isHidden() {
  return editor.closest("fieldset")?.hidden;
}

function refresh() {
  refreshQueued = false;
  const qb = builder();
  if (!qb || !qb.model.root) return;
  relabel(qb.model.root);
  const { rules, places, conditions } = toCriteria(qb.model.root);
  lastPlaces = places;
  if (touched) input.value = JSON.stringify(rules);
  clearTimeout(previewTimer);
  if (conditions === 0) {
    previewController?.abort();
    showStatus("Add a condition to see who matches.", "idle");
    showErrors([]);
    showSample([]);
    return;
  }
  if (isHidden()) return;
  showStatus("Counting…", "pending");
  previewTimer = setTimeout(() => preview(rules), PREVIEW_DELAY_MS);
}

function changed() {
  if (!loading) touched = true;
  if (!refreshQueued) {
    refreshQueued = true;
    queueMicrotask(refresh);
  }
}

$builder.on("afterUpdateRuleFilter.queryBuilder", (event, rule, previous) => {
  // A new event condition (or one switched to another event) counts events; one loaded keeps
  // its measure.
  const fresh = !rule.data || (!loading && previous?.id !== rule.filter?.id);
  if (rule.filter?.spec.kind === "event" && fresh) rule.data = { aggregate: "count" };
  renderMeasure(rule);
});
$builder.on("afterUpdateGroupNot.queryBuilder", (event, group) => {
  const toggle = group.$el.find("> .rules-group-header [data-not=group]");
  toggle.attr("aria-pressed", String(Boolean(group.not)));
});
$builder.on("rulesChanged.queryBuilder", changed);

$builder.queryBuilder({
  filters: buildFilters(words),
  operators: OPERATORS,
  plugins: { "not-group": { disable_template: true } },
  templates: TEMPLATES,
  allow_empty: true,
  display_errors: false,
  select_placeholder: "Choose…",
});

if (initial.rules) {
  try {
    builder().setRules(toBuilder(initial.rules), { allow_invalid: true });
  } catch (error) {
    initial.problem = `The stored rule could not be shown (${error.message}).`;
    if (builder().model.root) builder().reset();
    else builder().setRoot(true);
  }
}
loading = false;
refresh();

const shown = toCriteria(builder().model.root).rules;
editor.dataset.roundTrip = !initial.rules || sameJson(shown, initial.rules) ? "exact" : "changed";
if (initial.rules && editor.dataset.roundTrip !== "exact" && !initial.problem) {
  initial.problem =
    "Part of the stored rule is shown differently; it is kept as stored until you change it.";
}
if (initial.problem) {
  notice.textContent = initial.problem;
  notice.hidden = false;
}
if (config.errors.length) {
  showErrors(config.errors);
  markErrors(config.errors, lastPlaces);
}

if (config.readonly) {
  editor.classList.add("is-readonly");
  $builder.find("input, select, textarea, button").prop("disabled", true);
}

// A static segment has no rules: the editor goes away while "static" is chosen.
const kind = document.getElementById("id_kind");
if (kind) {
  const fieldset = editor.closest("fieldset");
  const follow = () => {
    fieldset.hidden = kind.value === "static";
    if (!fieldset.hidden) refresh();
  };
  kind.addEventListener("change", follow);
  follow();
}

input.form?.addEventListener("submit", () => {
  if (touched) input.value = JSON.stringify(toCriteria(builder().model.root).rules);
});
