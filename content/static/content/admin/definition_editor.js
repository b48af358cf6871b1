/**
 * Field definitions and zones of components and content types, as rows instead of JSON.
 *
 * Enhances each `textarea[data-definition-editor]` ("fields" or "zones"): the textarea stays the
 * form's value (it moves into an "Edit as JSON" disclosure for developers), and every change in
 * the rows rewrites it. Keys the rows do not show are kept as they are. The server's errors
 * (`data-errors`, paths like `fields[2].name`) are marked on the row and input they name.
 * `data-components` and `data-types` list what a field may nest or refer to.
 */

const FIELD_TYPES = [
  "string", "text", "richtext", "integer", "number", "boolean", "datetime", "enum", "media",
  "reference", "json", "component",
];
// Options that only mean something for some types; dropped when the type changes.
const TYPE_OPTIONS = {
  max_length: ["string", "text", "richtext"],
  min: ["integer", "number"],
  max: ["integer", "number"],
  choices: ["enum"],
  to: ["reference"],
  component: ["component"],
  repeatable: ["component"],
  max_items: ["component"],
};

let lastId = 0;
const uid = () => `de-${++lastId}`;

function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  let value;
  for (const [key, prop] of Object.entries(props)) {
    if (prop === undefined || prop === null || prop === false) continue;
    if (key === "class") el.className = prop;
    else if (key === "value") value = prop;
    else if (key === "checked" || key === "disabled") el[key] = Boolean(prop);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), prop);
    else el.setAttribute(key, prop === true ? "" : prop);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  if (value !== undefined) el.value = value;
  return el;
}

const parseJSON = (text, fallback) => {
  try {
    return JSON.parse(text);
  } catch {
    return fallback;
  }
};

class DefinitionEditor {
  constructor(textarea) {
    this.textarea = textarea;
    this.kind = textarea.dataset.definitionEditor; // "fields" or "zones"
    this.components = parseJSON(textarea.dataset.components || "[]", []);
    this.types = parseJSON(textarea.dataset.types || "[]", []);
    this.errors = parseJSON(textarea.dataset.errors || "[]", []);
    this.rows = h("ol", { class: "de-rows" });
    this.message = h("p", { class: "errornote de-message", hidden: true });
    this.element = h(
      "div",
      { class: "de-editor" },
      this.message,
      this.rows,
      h("button", { type: "button", class: "de-add", onclick: () => this.add() },
        this.kind === "zones" ? "Add zone" : "Add field"),
    );
    const details = h("details", { class: "de-json" }, h("summary", {}, "Edit as JSON"));
    const wrapper = h("div", { class: "de-wrapper" }, this.element, details);
    textarea.before(wrapper);
    details.append(textarea);
    textarea.addEventListener("change", () => this.load());
    this.load();
    this.markErrors();
  }

  load() {
    const value = parseJSON(this.textarea.value.trim() || "[]", null);
    if (!Array.isArray(value) || !value.every((item) => item && typeof item === "object")) {
      this.message.textContent = "The JSON below is not a list of objects; fix it there.";
      this.message.hidden = false;
      this.rows.hidden = true;
      return;
    }
    this.message.hidden = true;
    this.rows.hidden = false;
    this.items = value;
    this.render();
  }

  write() {
    this.textarea.value = JSON.stringify(this.items, null, 2);
  }

  render(focus) {
    this.rows.replaceChildren(...this.items.map((item, index) => this.renderRow(item, index)));
    if (focus) this.rows.children[focus.index]?.querySelector(focus.selector)?.focus();
  }

  changed(rerender, focus) {
    this.write();
    if (rerender) this.render(focus);
  }

  add() {
    this.items.push(this.kind === "zones" ? { name: "", components: [] } : { name: "", type: "string" });
    this.changed(true, { index: this.items.length - 1, selector: "input" });
  }

  move(index, delta) {
    const to = index + delta;
    if (to < 0 || to >= this.items.length) return;
    const [item] = this.items.splice(index, 1);
    this.items.splice(to, 0, item);
    this.changed(true, { index: to, selector: `[data-action="${delta < 0 ? "up" : "down"}"]:not(:disabled), .de-name` });
  }

  remove(index) {
    this.items.splice(index, 1);
    this.changed(true, { index: Math.max(0, index - 1), selector: ".de-name" });
  }

  // One input bound to `item[key]`: blank removes the key.
  input(item, key, label, props = {}, convert = (v) => v) {
    const id = uid();
    const current = item[key];
    const control = h("input", {
      id,
      type: "text",
      value: Array.isArray(current) ? current.join(", ") : current ?? "",
      "data-key": key,
      ...props,
      oninput: (event) => {
        const raw = event.target.value;
        if (raw === "") delete item[key];
        else item[key] = convert(raw);
        this.changed(false);
      },
    });
    return h("div", { class: `de-cell de-cell-${key}` }, h("label", { for: id }, label), control);
  }

  checkbox(item, key, label, rerender = false) {
    const id = uid();
    const control = h("input", {
      id,
      type: "checkbox",
      "data-key": key,
      checked: item[key] === true,
      onchange: (event) => {
        if (event.target.checked) item[key] = true;
        else delete item[key];
        this.changed(rerender);
      },
    });
    return h("div", { class: `de-cell de-cell-check de-cell-${key}` }, control, h("label", { for: id }, label));
  }

  select(item, key, label, choices, onchange) {
    const id = uid();
    const control = h(
      "select",
      { id, "data-key": key, value: item[key] ?? "", onchange: (event) => onchange(event.target.value) },
      h("option", { value: "" }, "—"),
      choices.map(({ value, label: text }) => h("option", { value }, text)),
    );
    if (item[key] && !choices.some((choice) => choice.value === item[key])) {
      control.append(h("option", { value: item[key] }, `${item[key]} (unknown)`));
      control.value = item[key];
    }
    return h("div", { class: `de-cell de-cell-${key}` }, h("label", { for: id }, label), control);
  }

  renderRow(item, index) {
    const noun = this.kind === "zones" ? "zone" : "field";
    const tools = h(
      "div",
      { class: "de-tools" },
      h("button", { type: "button", "data-action": "up", disabled: index === 0, onclick: () => this.move(index, -1) }, `Move ${noun} up`),
      h("button", { type: "button", "data-action": "down", disabled: index === this.items.length - 1, onclick: () => this.move(index, 1) }, `Move ${noun} down`),
      h("button", { type: "button", class: "de-remove", onclick: () => this.remove(index) }, `Remove ${noun}`),
    );
    const cells = this.kind === "zones" ? this.zoneCells(item) : this.fieldCells(item, index);
    return h(
      "li",
      { class: "de-row", "data-index": index, role: "group", "aria-label": `${noun[0].toUpperCase()}${noun.slice(1)} ${index + 1}` },
      h("div", { class: "de-cells" }, cells),
      tools,
    );
  }

  fieldCells(item) {
    const number = (v) => (Number.isNaN(Number(v)) ? v : Number(v));
    const cells = [
      this.input(item, "name", "Name", { class: "de-name", pattern: "[a-z][a-z0-9_]*", maxlength: 63, spellcheck: "false" }),
      this.select(item, "type", "Type", FIELD_TYPES.map((t) => ({ value: t, label: t })), (value) => {
        item.type = value;
        for (const [key, types] of Object.entries(TYPE_OPTIONS)) if (!types.includes(value)) delete item[key];
        this.changed(true);
      }),
      this.checkbox(item, "required", "Required"),
      this.input(item, "label", "Label", { maxlength: 120 }),
      this.input(item, "help_text", "Help text", { maxlength: 500 }),
    ];
    const type = item.type;
    if (TYPE_OPTIONS.max_length.includes(type)) cells.push(this.input(item, "max_length", "Max length", { type: "number", min: 1 }, number));
    if (TYPE_OPTIONS.min.includes(type)) {
      cells.push(this.input(item, "min", "Min", { type: "number", step: "any" }, number));
      cells.push(this.input(item, "max", "Max", { type: "number", step: "any" }, number));
    }
    if (type === "enum") {
      cells.push(this.input(item, "choices", "Choices (comma-separated)", {}, (v) => [...new Set(v.split(",").map((s) => s.trim()).filter(Boolean))]));
    }
    if (type === "reference") {
      cells.push(this.select(item, "to", "Refers to type", this.types.map((t) => ({ value: t.api_id, label: `${t.name} (${t.api_id})` })), (value) => {
        if (value) item.to = value;
        else delete item.to;
        this.changed(false);
      }));
    }
    if (type === "component") {
      cells.push(this.select(item, "component", "Component", this.components.map((c) => ({ value: c.api_id, label: `${c.name} (${c.api_id})` })), (value) => {
        if (value) item.component = value;
        else delete item.component;
        this.changed(false);
      }));
      cells.push(this.checkbox(item, "repeatable", "Repeatable", true));
      if (item.repeatable) cells.push(this.input(item, "max_items", "Max items", { type: "number", min: 1, max: 100 }, number));
    }
    return cells;
  }

  zoneCells(item) {
    const number = (v) => (Number.isNaN(Number(v)) ? v : Number(v));
    if (!Array.isArray(item.components)) item.components = [];
    const choices = [...this.components.map((c) => c.api_id), ...item.components.filter((id) => !this.components.some((c) => c.api_id === id))];
    const groupId = uid();
    const boxes = choices.map((apiId) => {
      const id = uid();
      const component = this.components.find((c) => c.api_id === apiId);
      return h(
        "span",
        { class: "de-component-choice" },
        h("input", {
          id,
          type: "checkbox",
          value: apiId,
          checked: item.components.includes(apiId),
          onchange: (event) => {
            const chosen = new Set(item.components);
            if (event.target.checked) chosen.add(apiId);
            else chosen.delete(apiId);
            // Keep the order of the list of components, so the JSON does not churn.
            item.components = choices.filter((c) => chosen.has(c));
            this.changed(false);
          },
        }),
        h("label", { for: id }, component ? component.name : `${apiId} (unknown)`),
      );
    });
    return [
      this.input(item, "name", "Name", { class: "de-name", pattern: "[a-z][a-z0-9_]*", maxlength: 63, spellcheck: "false" }),
      this.input(item, "label", "Label", { maxlength: 120 }),
      this.input(item, "max_blocks", "Max blocks", { type: "number", min: 1, max: 100 }, number),
      h(
        "div",
        { class: "de-cell de-cell-components", role: "group", "aria-labelledby": groupId, "data-key": "components" },
        h("span", { id: groupId, class: "de-group-label" }, "Allowed components"),
        h("div", { class: "de-component-choices" }, boxes),
      ),
    ];
  }

  markErrors() {
    for (const { attr, detail } of this.errors) {
      const match = /^(?:fields|zones)\[(\d+)\](?:\.(\w+))?/.exec(attr);
      if (!match) continue;
      const row = this.rows.children[Number(match[1])];
      if (!row) continue;
      row.classList.add("errors");
      const cell = match[2] && row.querySelector(`[data-key="${match[2]}"]`)?.closest(".de-cell");
      const where = cell || row.querySelector(".de-cells");
      where.classList.add("errors");
      where.append(h("ul", { class: "errorlist" }, h("li", {}, detail)));
    }
  }
}

document.querySelectorAll("textarea[data-definition-editor]").forEach((textarea) => new DefinitionEditor(textarea));
