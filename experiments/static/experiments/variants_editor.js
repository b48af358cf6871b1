/**
 * Variants of an experiment or a multivariate flag as rows (key, weight), instead of JSON.
 *
 * Enhances each `.variants-editor`: its hidden input is the form's value, and every change in the
 * rows rewrites it as `[{"key": "control", "weight": 0.5}, ...]`. Weights are shown in percent
 * and stored as shares; a row nobody touches keeps its stored share exactly. Keys the rows do not
 * show (a variant's `name`) are kept. The live total says whether the weights add up to 100 %;
 * "Split evenly" makes them. The server's errors (paths like `variants[1].key`) are marked on the
 * row and input they name until that row changes.
 */

const TOLERANCE = 1e-6;

function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, prop] of Object.entries(props)) {
    if (prop === undefined || prop === null || prop === false) continue;
    if (key === "class") el.className = prop;
    else if (key === "value") el.value = prop;
    else if (key === "disabled") el.disabled = Boolean(prop);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), prop);
    else el.setAttribute(key, prop === true ? "" : prop);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const parseJSON = (text, fallback) => {
  try {
    return JSON.parse(text);
  } catch {
    return fallback;
  }
};

// 0.333333… → "33.3333": enough digits to read, never a long float tail.
const percentText = (share) =>
  typeof share === "number" && Number.isFinite(share) ? String(Math.round(share * 1e6) / 1e4) : "";

class VariantsEditor {
  constructor(root) {
    this.root = root;
    this.input = document.getElementById(root.dataset.input);
    const config = parseJSON(document.getElementById(root.dataset.config)?.textContent || "{}", {});
    this.minimum = config.minimum ?? 2;
    this.controlFirst = Boolean(config.control_first);
    this.errors = Array.isArray(config.errors) ? config.errors : [];
    const stored = parseJSON(this.input.value || "[]", []);
    this.variants = (Array.isArray(stored) ? stored : []).map((variant) =>
      variant && typeof variant === "object" ? { ...variant } : { key: "", weight: null },
    );

    this.rows = h("ol", { class: "ve-rows" });
    this.total = h("output", { class: "ve-total", role: "status", "aria-live": "polite" });
    this.root.append(
      this.rows,
      h(
        "div",
        { class: "ve-tools" },
        h("button", { type: "button", class: "button ve-add", onclick: () => this.add() }, "Add variant"),
        h("button", { type: "button", class: "button ve-split", onclick: () => this.splitEvenly() }, "Split evenly"),
        this.total,
      ),
    );
    this.render();

    if (config.kind_input) {
      const kind = document.getElementById(config.kind_input);
      const row = this.root.closest(".form-row") || this.root;
      const sync = () => {
        const shown = kind.value === "multivariate";
        row.hidden = !shown;
        if (shown && this.variants.length === 0) {
          for (let i = 0; i < this.minimum; i += 1) this.variants.push({ key: "", weight: 1 / this.minimum });
          this.render();
        }
      };
      kind?.addEventListener("change", sync);
      if (kind) sync();
    }
  }

  errorsOf(index) {
    const prefix = `variants[${index}]`;
    return this.errors.filter((error) => error.attr === prefix || error.attr.startsWith(`${prefix}.`));
  }

  render() {
    this.rows.replaceChildren(...this.variants.map((variant, index) => this.row(variant, index)));
    this.update();
  }

  row(variant, index) {
    const number = index + 1;
    const errors = this.errorsOf(index);
    const invalid = (part) => errors.some((error) => error.attr === `variants[${index}].${part}`) || undefined;
    const key = h("input", {
      type: "text",
      value: typeof variant.key === "string" ? variant.key : "",
      maxlength: 63,
      required: true,
      autocomplete: "off",
      spellcheck: "false",
      "aria-invalid": invalid("key") && "true",
      oninput: (event) => {
        variant.key = event.target.value.trim();
        this.touched(index);
      },
    });
    const weight = h("input", {
      type: "number",
      class: "ve-weight",
      value: percentText(variant.weight),
      min: 0,
      max: 100,
      step: "any",
      inputmode: "decimal",
      "aria-invalid": invalid("weight") && "true",
      oninput: (event) => {
        const text = event.target.value.trim();
        variant.weight = text === "" || Number.isNaN(Number(text)) ? null : Number(text) / 100;
        this.touched(index);
      },
    });
    const remove = h(
      "button",
      {
        type: "button",
        class: "button ve-remove",
        "aria-label": `Remove variant ${number}`,
        disabled: this.variants.length <= 1,
        onclick: () => this.remove(index),
      },
      "Remove",
    );
    return h(
      "li",
      { class: "ve-row", role: "group", "aria-label": `Variant ${number}`, "data-index": index },
      h("label", {}, "Key", key),
      h("label", {}, "Weight (%)", weight),
      remove,
      this.controlFirst && index === 0 ? h("span", { class: "ve-control" }, "control (the default)") : null,
      errors.length
        ? h("p", { class: "ve-row-errors" }, errors.map((error) => error.detail).join(" "))
        : null,
    );
  }

  touched(index) {
    // The server's marks were about the old values of this row.
    const before = this.errors.length;
    const prefix = `variants[${index}]`;
    this.errors = this.errors.filter((error) => error.attr !== prefix && !error.attr.startsWith(`${prefix}.`));
    if (this.errors.length !== before) {
      const row = this.rows.children[index];
      row?.querySelectorAll("[aria-invalid]").forEach((input) => input.removeAttribute("aria-invalid"));
      row?.querySelector(".ve-row-errors")?.remove();
    }
    this.update();
  }

  add() {
    this.variants.push({ key: "", weight: 0 });
    this.errors = []; // paths shift when rows change
    this.render();
    this.rows.lastElementChild?.querySelector("input[type=text]")?.focus();
  }

  remove(index) {
    this.variants.splice(index, 1);
    this.errors = [];
    this.render();
  }

  splitEvenly() {
    const count = this.variants.length;
    if (!count) return;
    for (const variant of this.variants) variant.weight = 1 / count;
    this.rows.querySelectorAll("input.ve-weight").forEach((input, index) => {
      input.value = percentText(this.variants[index].weight);
      input.removeAttribute("aria-invalid");
    });
    this.update();
  }

  update() {
    const weights = this.variants.map((variant) => variant.weight);
    const complete = weights.every((weight) => typeof weight === "number" && Number.isFinite(weight));
    const sum = complete ? weights.reduce((total, weight) => total + weight, 0) : NaN;
    const ok = complete && Math.abs(sum - 1) <= TOLERANCE;
    this.total.dataset.state = ok ? "ok" : "off";
    if (!complete) this.total.textContent = "Total: — (every variant needs a weight)";
    else if (ok) this.total.textContent = "Total: 100 %";
    else this.total.textContent = `Total: ${percentText(sum)} % (must be 100 %)`;
    this.rows.querySelectorAll(".ve-remove").forEach((button) => {
      button.disabled = this.variants.length <= 1;
    });
    this.input.value = JSON.stringify(this.variants);
  }
}

for (const root of document.querySelectorAll(".variants-editor")) {
  root.variantsEditor = new VariantsEditor(root);
}
