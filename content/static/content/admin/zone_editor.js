/**
 * The entry editor: an entry type's own fields and its dynamic zones, as inputs. No build step.
 *
 * The page embeds its description with Django's json_script (#entry-editor-config):
 *   type        {api_id, name, kind, fields: [definition], zones: [{name, label?, components, max_blocks?}]}
 *   components  {api_id: {name, description, fields: [definition]}}, nested ones included
 *   document    {fields, zones: {zone: [block]}}: the working copy, or what was just submitted
 *   errors      [{attr, detail}]: the service's errors by path (`zones.body[1].data.heading`)
 *   options     {media: [{id, label}], references: {type: [{id, label}]}, segments: [key],
 *                experiments: [{key, name, status, variants: [key]}] (the first variant is control),
 *                flags: [{key, name, enabled}]}
 *   readonly    true when the user may only look
 *
 * State is the document itself. An input writes its value into the object it belongs to as it
 * changes (a blank input removes the key: absent means "not set", and in a variant "inherit the
 * default"). Adding, removing or moving a block, item or variant changes the array and re-renders
 * that one list. On submit, the document goes as JSON into the form's hidden `document` input.
 * Every field and container carries `data-path`, the path the service's errors name, so an error
 * shows beside its input; after a structural change the positions no longer match, so inline
 * errors are cleared (the summary above the form stays).
 *
 * A block may also be A/B tested (`experiment: {key, variants: {variantKey: partial data}}`) and
 * gated by a feature flag (`flag: key`); both get their own section. Any block key the editor
 * does not know is sent back exactly as it came: a save must not drop what the API stored.
 */

const config = JSON.parse(document.getElementById("entry-editor-config").textContent);

/** Per block, the experiment bindings the marketer switched away from in this page, by key:
 * picking one again brings back what was typed for it. */
const experimentStash = new WeakMap();

// --- Small DOM helpers --------------------------------------------------------------------------
let lastId = 0;
const uid = (prefix) => `ze-${prefix}-${++lastId}`;

/** `h("input", {type: "text", value: "x", oninput: fn}, ...children)`; falsy props are skipped. */
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
  if (value !== undefined) el.value = value; // after the children: a select needs its options
  return el;
}

const button = (text, onclick, props = {}) => h("button", { type: "button", onclick, ...props }, text);
const humanize = (name) => name.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
const fieldLabel = (def) => def.label || humanize(def.name);
const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
const clone = (value) => (value === undefined ? value : JSON.parse(JSON.stringify(value)));

/** `zones.body[1].data` → `zones.body[1]` → `zones.body` → `zones` → "". */
const parentPath = (path) => {
  const parent = path.replace(/(\.[^.[\]]+|\[\d+\])$/, "");
  return parent === path ? "" : parent;
};

/** "vip, newsletter vip" → ["vip", "newsletter"] */
const keysParsed = (text) => [...new Set(text.split(/[\s,]+/).filter(Boolean))];

function shortDisplay(value) {
  if (value === undefined || value === null || value === "") return "";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "object") return "(set)";
  const text = String(value).replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim();
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

function toLocalInput(iso) {
  const date = new Date(iso);
  if (!iso || Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

function fromLocalInput(value) {
  if (!value) return undefined;
  const date = new Date(value); // read in the marketer's time zone, sent with one (UTC)
  return Number.isNaN(date.getTime()) ? value : date.toISOString();
}

// --- Lists: blocks, repeated items, variants ----------------------------------------------------
let dragging = null; // {list, index} while a block or item is dragged

/**
 * An ordered list the marketer can add to, remove from and reorder (buttons, or drag and drop).
 * `items` is the array in the document; it is changed in place.
 */
class ListEditor {
  constructor(editor, options) {
    Object.assign(this, { level: 4, max: Infinity }, options);
    this.editor = editor;
    this.list = h("ol", { class: `ze-list ze-list-${this.noun}`, "data-path": this.path });
    this.footer = this.renderFooter ? this.renderFooter(this) : null;
    this.element = h("div", { class: "ze-list-wrapper" }, this.list, this.footer);
    this.render();
  }

  render() {
    this.list.replaceChildren(...this.items.map((item, index) => this.renderItem(item, index)));
    this.onRender?.(this);
  }

  get full() {
    return this.items.length >= this.max;
  }

  renderItem(item, index) {
    const path = `${this.path}[${index}]`;
    const last = this.items.length - 1;
    const heading = h(`h${this.level}`, { class: "ze-item-title", tabindex: "-1" }, this.title(item, index));
    const tools = h(
      "div",
      { class: "ze-tools" },
      button(`Move ${this.noun} up`, () => this.move(index, -1), { disabled: index === 0, "data-action": "up" }),
      button(`Move ${this.noun} down`, () => this.move(index, 1), { disabled: index === last, "data-action": "down" }),
      button(`Remove ${this.noun}`, () => this.remove(index), { class: "ze-remove", "data-action": "remove" }),
    );
    const header = h("div", { class: "ze-item-header" }, heading, tools);
    const group = h(
      "div",
      { role: "group", "aria-label": this.label(item, index), class: `ze-item ze-${this.noun}`, "data-path": path },
      header,
      h("div", { class: "ze-error-slot" }),
      this.renderBody(item, index, path),
    );
    // "change" too: a select writes its value on change, after its input event.
    for (const type of ["input", "change"]) {
      group.addEventListener(type, () => {
        heading.textContent = this.title(item, index);
      });
    }
    const li = h("li", { "data-index": index }, group);
    if (!this.editor.readonly) this.makeDraggable(li, header, index);
    return li;
  }

  makeDraggable(li, handle, index) {
    handle.setAttribute("draggable", "true");
    handle.classList.add("ze-drag-handle");
    handle.title = "Drag to reorder, or use the move buttons";
    handle.addEventListener("dragstart", (event) => {
      dragging = { list: this, index };
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", String(index));
      li.classList.add("ze-dragging");
    });
    handle.addEventListener("dragend", () => {
      dragging = null;
      li.classList.remove("ze-dragging");
      this.list.querySelectorAll(".ze-drop-before, .ze-drop-after").forEach((el) => {
        el.classList.remove("ze-drop-before", "ze-drop-after");
      });
    });
    const after = (event) => event.clientY > li.getBoundingClientRect().top + li.offsetHeight / 2;
    li.addEventListener("dragover", (event) => {
      if (dragging?.list !== this) return;
      event.preventDefault();
      event.stopPropagation();
      li.classList.toggle("ze-drop-after", after(event));
      li.classList.toggle("ze-drop-before", !after(event));
    });
    li.addEventListener("dragleave", () => li.classList.remove("ze-drop-before", "ze-drop-after"));
    li.addEventListener("drop", (event) => {
      if (dragging?.list !== this) return;
      event.preventDefault();
      event.stopPropagation();
      const from = dragging.index;
      let to = index + (after(event) ? 1 : 0);
      if (from < to) to -= 1;
      dragging = null;
      if (from !== to) this.moveTo(from, to, null);
      else this.render();
    });
  }

  move(index, delta) {
    const to = index + delta;
    if (to < 0 || to >= this.items.length) return;
    this.moveTo(index, to, delta < 0 ? "up" : "down");
  }

  moveTo(from, to, action) {
    const [item] = this.items.splice(from, 1);
    this.items.splice(to, 0, item);
    this.structureChanged();
    this.focusItem(to, action);
  }

  remove(index) {
    this.items.splice(index, 1);
    this.structureChanged();
    if (this.items.length) this.focusItem(Math.min(index, this.items.length - 1), null);
    else this.footer?.querySelector("button, select")?.focus();
  }

  add(item) {
    this.items.push(item);
    this.structureChanged();
    const group = this.list.lastElementChild?.querySelector(".ze-item");
    (group?.querySelector("input, textarea, select") || group?.querySelector(".ze-item-title"))?.focus();
  }

  structureChanged() {
    this.editor.clearInlineErrors();
    this.render();
    this.commit();
  }

  focusItem(index, action) {
    const li = this.list.children[index];
    if (!li) return;
    const tools = li.querySelector(":scope > .ze-item > .ze-item-header > .ze-tools");
    const wanted = action && tools.querySelector(`[data-action="${action}"]`);
    const fallback = tools.querySelector('[data-action="up"]:not(:disabled), [data-action="down"]:not(:disabled)');
    const target = wanted && !wanted.disabled ? wanted : action ? fallback : null;
    (target || li.querySelector(".ze-item-title")).focus();
  }
}

// --- The editor ---------------------------------------------------------------------------------
class EntryEditor {
  constructor(root, form, { type, components, document: doc, errors, options, readonly }) {
    this.root = root;
    this.form = form;
    this.type = type;
    this.components = components;
    this.options = options;
    this.readonly = readonly;
    this.doc = {
      fields: isObject(doc.fields) ? doc.fields : {},
      zones: isObject(doc.zones) ? doc.zones : {},
    };
    for (const zone of type.zones) {
      if (!Array.isArray(this.doc.zones[zone.name])) this.doc.zones[zone.name] = [];
    }
    this.render();
    this.applyErrors(errors);
    this.linkErrorSummary();
    form.addEventListener("submit", () => this.writeDocument());
    document.getElementById("id_audience")?.addEventListener("change", () => this.refreshSegments());
    this.writeDocument();
  }

  render() {
    const parts = [];
    if (this.type.fields.length) {
      parts.push(
        h(
          "fieldset",
          { class: "module ze-entry-fields", "data-path": "fields" },
          h("h2", {}, "Fields"),
          h("div", { class: "ze-error-slot" }),
          this.renderObject(this.type.fields, this.doc.fields, "fields", { commit: () => {} }),
        ),
      );
    }
    if (this.type.zones.length) {
      parts.push(h("div", { class: "ze-zones", "data-path": "zones" }, this.type.zones.map((z) => this.renderZone(z))));
    }
    const all = h("fieldset", { class: "ze-root", disabled: this.readonly }, parts);
    this.root.replaceChildren(all);
  }

  // -- Zones and blocks
  componentName(apiId) {
    return this.components[apiId]?.name || apiId;
  }

  renderZone(zone) {
    const blocks = this.doc.zones[zone.name];
    const headingId = uid("zone");
    const label = zone.label || humanize(zone.name);
    const allowed = zone.components.filter((apiId) => this.components[apiId]);
    const list = new ListEditor(this, {
      items: blocks,
      path: `zones.${zone.name}`,
      noun: "block",
      level: 3,
      max: zone.max_blocks || Infinity,
      commit: () => this.refreshSegments(),
      title: (block, index) => {
        const summary = this.blockSummary(block);
        const tags = [
          isObject(block.experiment) && block.experiment.key ? `A/B test ${block.experiment.key}` : null,
          typeof block.flag === "string" ? `flag ${block.flag}` : null,
        ].filter(Boolean);
        return (
          `${index + 1}. ${this.componentName(block.component)}${summary ? ` — ${summary}` : ""}` +
          `${tags.length ? ` [${tags.join(", ")}]` : ""}`
        );
      },
      label: (block, index) => `Block ${index + 1}: ${this.componentName(block.component)}`,
      renderBody: (block, index, path) => this.renderBlock(block, path),
      renderFooter: (owner) => {
        const selectId = uid("add");
        const select = h(
          "select",
          { id: selectId },
          allowed.map((apiId) => h("option", { value: apiId }, this.componentName(apiId))),
        );
        const add = button("Add block", () => {
          owner.add({ component: select.value, data: {}, variants: [] });
        }, { class: "ze-add" });
        return h(
          "div",
          { class: "ze-add-row" },
          h("label", { for: selectId }, "Component to add"),
          select,
          add,
          h("span", { class: "ze-full-note help", hidden: true }, `At most ${zone.max_blocks} blocks.`),
        );
      },
      onRender: (owner) => {
        const full = owner.full;
        owner.footer.querySelector(".ze-add").disabled = full;
        owner.footer.querySelector(".ze-full-note").hidden = !full;
      },
    });
    return h(
      "section",
      { class: "module ze-zone", "aria-labelledby": headingId, "data-path": `zones.${zone.name}` },
      h("h2", { id: headingId }, label),
      h(
        "p",
        { class: "help ze-zone-help" },
        `Blocks, in the order readers get them. Allowed: ${allowed.map((a) => this.componentName(a)).join(", ")}.`,
      ),
      h("div", { class: "ze-error-slot" }),
      list.element,
    );
  }

  blockSummary(block) {
    const fields = this.components[block.component]?.fields || [];
    for (const def of fields) {
      if (["string", "text"].includes(def.type) && block.data?.[def.name]) return shortDisplay(block.data[def.name]);
    }
    return "";
  }

  renderBlock(block, path) {
    const component = this.components[block.component];
    if (!isObject(block.data)) block.data = {};
    if (!Array.isArray(block.variants)) block.variants = [];
    if (!component) {
      return h("p", { class: "errornote" }, `Unknown component “${block.component}”: remove this block.`);
    }
    const body = h("div", { class: "ze-block-body" });
    if (component.description) body.append(h("p", { class: "help" }, component.description));
    body.append(this.renderObject(component.fields, block.data, `${path}.data`, { commit: () => {} }));
    body.append(this.renderVariants(block, component, path));
    body.append(this.renderExperiment(block, component, path));
    body.append(this.renderFlag(block, path));
    return body;
  }

  renderVariants(block, component, path) {
    const list = new ListEditor(this, {
      items: block.variants,
      path: `${path}.variants`,
      noun: "variant",
      commit: () => this.refreshSegments(),
      title: (variant, index) =>
        `Variant ${index + 1}${variant.name ? ` “${variant.name}”` : ""}` +
        `${variant.segments?.length ? ` for ${variant.segments.join(", ")}` : ""}`,
      label: (variant, index) => `Variant ${index + 1}`,
      renderBody: (variant, index, variantPath) => this.renderVariant(variant, block, component, variantPath),
      renderFooter: (owner) =>
        h("div", { class: "ze-add-row" }, button("Add variant", () => owner.add({ segments: [], data: {} }), { class: "ze-add" })),
    });
    return h(
      "fieldset",
      { class: "ze-variants" },
      h("legend", {}, "Variants"),
      h(
        "p",
        { class: "help" },
        "A variant replaces the default for customers in its segments. Fill in only what differs: " +
          "blank fields keep the default. The first variant that matches a customer wins.",
      ),
      list.element,
    );
  }

  renderVariant(variant, block, component, path) {
    if (!isObject(variant.data)) variant.data = {};
    if (!Array.isArray(variant.segments)) variant.segments = [];
    const nameId = uid("vname");
    const segmentsId = uid("vseg");
    return h(
      "div",
      { class: "ze-variant-body" },
      h(
        "div",
        { class: "ze-field", "data-path": `${path}.name` },
        h("label", { for: nameId }, "Name"),
        h("input", {
          id: nameId,
          type: "text",
          maxlength: 120,
          value: variant.name || "",
          placeholder: "optional, e.g. VIP banner",
          oninput: (event) => {
            if (event.target.value) variant.name = event.target.value;
            else delete variant.name;
          },
        }),
      ),
      h(
        "div",
        { class: "ze-field", "data-path": `${path}.segments` },
        h("label", { for: segmentsId, class: "required" }, "Segments"),
        h("input", {
          id: segmentsId,
          type: "text",
          list: "entry-editor-segments",
          autocomplete: "off",
          value: variant.segments.join(", "),
          placeholder: "segment keys, e.g. vip",
          oninput: (event) => {
            variant.segments = keysParsed(event.target.value);
          },
          onchange: () => this.refreshSegments(),
        }),
      ),
      this.renderObject(component.fields, variant.data, `${path}.data`, {
        commit: () => {},
        partial: true,
        inherited: block.data,
      }),
    );
  }

  // -- A/B test and feature flag of a block
  /** The block's experiment, when it has a well-formed one (anything else is kept as it is). */
  boundExperiment(block) {
    return isObject(block.experiment) && typeof block.experiment.key === "string" ? block.experiment : null;
  }

  /**
   * "A/B test": which experiment the block is bound to and, for each of its variants but control,
   * partial data merged over the default for the visitors bucketed into that variant. Data kept
   * for a key that is not (or no longer) one of those variants is shown too, so it can be seen
   * and removed.
   */
  renderExperiment(block, component, path) {
    const experimentPath = `${path}.experiment`;
    const catalog = this.options.experiments || [];
    const selectId = uid("exp");
    const hintId = `${selectId}-help`;
    const hint = h("div", { class: "help", id: hintId });
    const variantsBox = h("div", { class: "ze-experiment-variants", "data-path": `${experimentPath}.variants` });
    const showVariants = () => {
      variantsBox.replaceChildren();
      const experiment = this.boundExperiment(block);
      if (!experiment) {
        hint.textContent = "Not tested: every visitor gets the default (or their segment variant).";
        return;
      }
      const known = catalog.find((candidate) => candidate.key === experiment.key);
      const [control, ...tested] = known?.variants || [];
      const stored = isObject(experiment.variants) ? Object.keys(experiment.variants) : [];
      if (!known) {
        hint.textContent =
          `There is no experiment “${experiment.key}” any more: every visitor gets the default. ` +
          "Choose another one, or none.";
      } else {
        hint.textContent =
          `Control (“${control ?? "control"}”) is the default above: its visitors get the block as it is. ` +
          "For each other variant, fill in only what differs: blank fields keep the default. " +
          "A segment variant that matches a visitor wins over the test." +
          (known.status === "running" ? "" : ` The experiment is ${known.status}: it splits no visitors now.`);
      }
      for (const key of [...new Set([...tested, ...stored])]) {
        let note = null;
        if (known && key === control) {
          note = "Control normally has no data of its own; what is here still applies to its visitors.";
        } else if (known && !tested.includes(key)) {
          note = `“${key}” is not a variant of ${known.key}: no visitor gets this data.`;
        }
        variantsBox.append(
          this.renderExperimentVariant(block, component, experiment, key, `${experimentPath}.variants.${key}`, {
            note,
            onRemove: note ? showVariants : null,
          }),
        );
      }
    };
    const choices = catalog.map((experiment) => ({
      id: experiment.key,
      label: `${experiment.key} — ${experiment.name} — ${experiment.status}`,
    }));
    const select = this.select(
      selectId,
      choices,
      this.boundExperiment(block)?.key,
      (key) => {
        const stash = experimentStash.get(block) || {};
        experimentStash.set(block, stash);
        const current = this.boundExperiment(block);
        if (current) stash[current.key] = current;
        if (key === undefined) delete block.experiment;
        else block.experiment = stash[key] || { key, variants: {} };
        showVariants();
      },
      { blank: "— none —", missing: (key) => `${key} — missing` },
    );
    select.setAttribute("aria-describedby", hintId);
    showVariants();
    return h(
      "fieldset",
      { class: "ze-variants ze-experiment", "data-path": experimentPath },
      h("legend", {}, "A/B test"),
      h("div", { class: "ze-error-slot" }),
      h("div", { class: "ze-field", "data-path": `${experimentPath}.key` }, h("label", { for: selectId }, "Experiment"), select, hint),
      variantsBox,
    );
  }

  /** One experiment variant's partial data: the same inputs as a segment variant's. */
  renderExperimentVariant(block, component, experiment, key, path, { note, onRemove }) {
    const stored = isObject(experiment.variants) ? experiment.variants[key] : undefined;
    const data = isObject(stored) ? stored : {};
    // Attached only once it holds something: an untouched variant stays out of the document.
    const attach = () => {
      if (!isObject(experiment.variants)) experiment.variants = {};
      if (Object.keys(data).length) experiment.variants[key] = data;
      else delete experiment.variants[key];
    };
    const remove =
      onRemove &&
      button(
        `Remove data of “${key}”`,
        () => {
          if (isObject(experiment.variants)) delete experiment.variants[key];
          onRemove();
        },
        { class: "ze-remove" },
      );
    return h(
      "fieldset",
      { class: "ze-nested ze-experiment-variant", "data-path": path },
      h("legend", {}, `Experiment variant “${key}”`),
      note ? h("p", { class: "help" }, note, " ", remove) : null,
      h("div", { class: "ze-error-slot" }),
      this.renderObject(component.fields, data, path, { commit: attach, partial: true, inherited: block.data }),
    );
  }

  /** "Show only when flag is on": the block reaches only visitors for whom the flag is on. */
  renderFlag(block, path) {
    const flags = this.options.flags || [];
    const id = uid("flag");
    const hint = h("div", { class: "help", id: `${id}-help` });
    const describe = () => {
      const key = typeof block.flag === "string" ? block.flag : null;
      const flag = key && flags.find((candidate) => candidate.key === key);
      if (!key) hint.textContent = "Every visitor gets this block.";
      else if (!flag) hint.textContent = `There is no flag “${key}”: no visitor gets this block.`;
      else {
        hint.textContent =
          `Only visitors for whom “${key}” is on get this block; the others get nothing in its place.` +
          (flag.enabled ? "" : " The flag is off now: no visitor gets it.");
      }
    };
    const select = this.select(
      id,
      flags.map((flag) => ({ id: flag.key, label: `${flag.key} — ${flag.name} (${flag.enabled ? "on" : "off"})` })),
      typeof block.flag === "string" ? block.flag : undefined,
      (key) => {
        if (key === undefined) delete block.flag;
        else block.flag = key;
        describe();
      },
      { blank: "— none: shown to everyone —", missing: (key) => `${key} — missing` },
    );
    select.setAttribute("aria-describedby", hint.id);
    describe();
    return h(
      "fieldset",
      { class: "ze-variants ze-flag" },
      h("legend", {}, "Feature flag"),
      h("div", { class: "ze-field", "data-path": `${path}.flag` }, h("label", { for: id }, "Show only when flag is on"), select, hint),
    );
  }

  // -- Fields of one object (the entry's fields, a block's data, a variant's data, a nested item)
  /**
   * Inputs for `defs`, writing into `target`. `commit` runs after every write (nested objects use
   * it to attach themselves to their parent only once they hold something). In a variant
   * (`partial`), a blank input inherits `inherited[name]`, shown as the placeholder.
   */
  renderObject(defs, target, path, { commit, partial = false, inherited = {} }) {
    return h(
      "div",
      { class: "ze-fields" },
      defs.map((def) => this.renderField(def, target, `${path}.${def.name}`, { commit, partial, inherited })),
    );
  }

  renderField(def, target, path, context) {
    const { commit, partial, inherited } = context;
    const set = (value) => {
      if (value === undefined) delete target[def.name];
      else target[def.name] = value;
      commit();
    };
    const id = uid("f");
    const wrapper = h("div", { class: `ze-field ze-field-${def.type}`, "data-path": path });
    const label = h("label", { for: id, class: def.required && !partial ? "required" : null }, fieldLabel(def));
    if (def.type === "component") {
      wrapper.append(this.renderComponentField(def, target, path, context));
      return wrapper;
    }
    const inheritedValue = partial ? inherited?.[def.name] : undefined;
    const control = this.renderControl(def, target[def.name], id, set, { partial, inheritedValue });
    if (def.type === "boolean" && !partial) {
      wrapper.classList.add("ze-checkbox");
      wrapper.append(control, label);
    } else {
      wrapper.append(label, control);
    }
    if (def.help_text) {
      const helpId = `${id}-help`;
      control.setAttribute("aria-describedby", helpId);
      wrapper.append(h("div", { class: "help", id: helpId }, def.help_text));
    }
    return wrapper;
  }

  renderControl(def, value, id, set, { partial, inheritedValue }) {
    const placeholder = partial ? (shortDisplay(inheritedValue) ? `inherits: ${shortDisplay(inheritedValue)}` : "inherits the default") : null;
    const textInput = (event) => set(event.target.value === "" ? undefined : event.target.value);
    switch (def.type) {
      case "string":
        return h("input", { id, type: "text", maxlength: def.max_length || 255, value: value ?? "", placeholder, oninput: textInput });
      case "text":
      case "richtext":
        return h("textarea", {
          id,
          rows: def.type === "richtext" ? 6 : 3,
          maxlength: def.max_length,
          value: value ?? "",
          placeholder: placeholder || (def.type === "richtext" ? "HTML: <p>, <strong>, <a href>, <ul>…" : null),
          oninput: textInput,
        });
      case "integer":
      case "number":
        return h("input", {
          id,
          type: "number",
          step: def.type === "integer" ? 1 : "any",
          min: def.min,
          max: def.max,
          value: value ?? "",
          placeholder,
          oninput: (event) => set(event.target.value === "" ? undefined : Number(event.target.value)),
        });
      case "boolean":
        if (partial) {
          const current = value === true ? "true" : value === false ? "false" : "";
          return h(
            "select",
            { id, value: current, onchange: (event) => set(event.target.value === "" ? undefined : event.target.value === "true") },
            h("option", { value: "" }, `Inherit (${shortDisplay(inheritedValue) || "no"})`),
            h("option", { value: "true" }, "Yes"),
            h("option", { value: "false" }, "No"),
          );
        }
        return h("input", { id, type: "checkbox", checked: value === true, onchange: (event) => set(event.target.checked) });
      case "datetime":
        return h("input", {
          id,
          type: "datetime-local",
          value: toLocalInput(value),
          onchange: (event) => set(fromLocalInput(event.target.value)),
        });
      case "enum":
        return this.select(id, def.choices.map((choice) => ({ id: choice, label: choice })), value, set, {
          blank: partial ? `Inherit (${shortDisplay(inheritedValue) || "none"})` : "—",
        });
      case "media":
        return this.select(id, this.options.media, value, (v) => set(v === undefined ? v : Number(v)), {
          blank: partial ? "Inherit" : "— no image —",
          missing: (v) => `Media asset #${v}`,
        });
      case "reference":
        return this.select(id, this.options.references[def.to] || [], value, (v) => set(v === undefined ? v : Number(v)), {
          blank: partial ? "Inherit" : "— none —",
          missing: (v) => `${def.to} entry #${v}`,
        });
      default: // json: the one place where JSON is typed
        return h("textarea", {
          id,
          class: "ze-json",
          rows: 4,
          spellcheck: "false",
          value: value === undefined ? "" : JSON.stringify(value, null, 2),
          placeholder: placeholder || "JSON",
          oninput: (event) => {
            const text = event.target.value.trim();
            if (!text) {
              event.target.setCustomValidity("");
              set(undefined);
              return;
            }
            try {
              set(JSON.parse(text));
              event.target.setCustomValidity("");
            } catch (error) {
              event.target.setCustomValidity(`Not valid JSON: ${error.message}`);
            }
          },
        });
    }
  }

  select(id, choices, value, set, { blank, missing }) {
    const options = [h("option", { value: "" }, blank)];
    const known = new Set(choices.map((choice) => String(choice.id)));
    if (value !== undefined && value !== null && !known.has(String(value))) {
      options.push(h("option", { value: String(value) }, missing ? missing(value) : String(value)));
    }
    options.push(...choices.map((choice) => h("option", { value: String(choice.id) }, choice.label)));
    return h(
      "select",
      { id, value: value === undefined || value === null ? "" : String(value), onchange: (event) => set(event.target.value === "" ? undefined : event.target.value) },
      options,
    );
  }

  /** A nested component: one object (a fieldset) or a repeatable list of them. In a variant, it
   * is inherited as a whole unless "Override" is ticked (variants replace it, they do not merge). */
  renderComponentField(def, target, path, { commit, partial, inherited }) {
    const component = this.components[def.component] || { name: def.component, fields: [] };
    const legend = h("legend", { class: def.required && !partial ? "required" : null }, fieldLabel(def));
    const fieldset = h("fieldset", { class: "ze-nested" }, legend);
    if (def.help_text) fieldset.append(h("p", { class: "help" }, def.help_text));
    const content = h("div", { class: "ze-nested-content" });
    const renderContent = (keepEmpty) => {
      content.replaceChildren(
        def.repeatable
          ? this.renderRepeatable(def, component, target, path, commit, keepEmpty)
          : this.renderSingleNested(def, component, target, path, commit, keepEmpty),
      );
    };
    if (partial) {
      const toggleId = uid("override");
      const toggle = h("input", {
        id: toggleId,
        type: "checkbox",
        checked: def.name in target,
        onchange: (event) => {
          if (event.target.checked) {
            target[def.name] = clone(inherited?.[def.name]) ?? (def.repeatable ? [] : {});
            renderContent(true);
          } else {
            delete target[def.name];
            content.replaceChildren();
          }
          commit();
        },
      });
      fieldset.append(h("div", { class: "ze-checkbox" }, toggle, h("label", { for: toggleId }, `Override ${fieldLabel(def).toLowerCase()}`)));
      if (def.name in target) renderContent(true);
    } else {
      renderContent(false);
    }
    fieldset.append(content);
    return fieldset;
  }

  renderSingleNested(def, component, target, path, commit, keepEmpty) {
    const obj = isObject(target[def.name]) ? target[def.name] : {};
    const attach = () => {
      if (keepEmpty || Object.keys(obj).length) target[def.name] = obj;
      else delete target[def.name];
      commit();
    };
    return this.renderObject(component.fields, obj, path, { commit: attach });
  }

  renderRepeatable(def, component, target, path, commit, keepEmpty) {
    const items = Array.isArray(target[def.name]) ? target[def.name] : [];
    const attach = () => {
      if (keepEmpty || items.length) target[def.name] = items;
      else delete target[def.name];
      commit();
    };
    const list = new ListEditor(this, {
      items,
      path,
      noun: "item",
      level: 5,
      max: def.max_items || Infinity,
      commit: attach,
      title: (item, index) => {
        const first = component.fields.find((f) => ["string", "text"].includes(f.type));
        const summary = first && isObject(item) ? shortDisplay(item[first.name]) : "";
        return `${component.name} ${index + 1}${summary ? ` — ${summary}` : ""}`;
      },
      label: (item, index) => `${component.name} ${index + 1}`,
      renderBody: (item, index, itemPath) => {
        if (!isObject(item)) items[index] = {};
        return this.renderObject(component.fields, items[index], itemPath, { commit: attach });
      },
      renderFooter: (owner) =>
        h("div", { class: "ze-add-row" }, button(`Add ${component.name}`, () => owner.add({}), { class: "ze-add" })),
      onRender: (owner) => {
        owner.footer.querySelector(".ze-add").disabled = owner.full;
      },
    });
    return list.element;
  }

  // -- Segments suggested for variants, the audience and the preview
  refreshSegments() {
    const datalist = document.getElementById("entry-editor-segments");
    if (!datalist) return;
    const keys = new Set(this.options.segments);
    const audience = document.getElementById("id_audience");
    if (audience) keysParsed(audience.value).forEach((key) => keys.add(key));
    for (const blocks of Object.values(this.doc.zones)) {
      for (const block of blocks) (block.variants || []).forEach((v) => (v.segments || []).forEach((k) => keys.add(k)));
    }
    datalist.replaceChildren(...[...keys].map((key) => h("option", { value: key })));
  }

  // -- Errors by path
  errorTarget(attr) {
    for (let path = attr; path; path = parentPath(path)) {
      const found = this.root.querySelector(`[data-path="${CSS.escape(path)}"]`);
      if (found) return { element: found, path };
    }
    return null;
  }

  applyErrors(errors) {
    let first = null;
    for (const { attr, detail } of errors) {
      const target = this.errorTarget(attr);
      if (!target) continue;
      const { element, path } = target;
      const rest = attr.slice(path.length).replace(/^\./, "");
      const slot = element.querySelector(":scope > .ze-error-slot");
      let list = (slot || element).querySelector(":scope > ul.errorlist");
      if (!list) {
        list = h("ul", { class: "errorlist ze-errorlist", id: uid("err") });
        if (slot) slot.append(list);
        else element.prepend(list);
      }
      list.append(h("li", {}, rest ? `${rest}: ${detail}` : detail));
      element.classList.add("errors");
      const control = slot ? null : element.querySelector(":scope > input, :scope > textarea, :scope > select");
      if (control) {
        control.setAttribute("aria-invalid", "true");
        control.setAttribute("aria-describedby", [control.getAttribute("aria-describedby"), list.id].filter(Boolean).join(" "));
      }
      first ??= element;
    }
    first?.scrollIntoView({ block: "center" });
  }

  clearInlineErrors() {
    this.root.querySelectorAll(".ze-errorlist").forEach((list) => list.remove());
    this.root.querySelectorAll(".errors").forEach((el) => el.classList.remove("errors"));
    this.root.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  }

  /** The error summary above the form: each path becomes a link to its input. */
  linkErrorSummary() {
    document.querySelectorAll(".entry-editor-error-summary li[data-path]").forEach((item) => {
      const target = this.errorTarget(item.dataset.path);
      if (!target) return;
      const code = item.querySelector("code");
      if (!code) return;
      const link = h("a", { href: "#" }, code.textContent);
      link.addEventListener("click", (event) => {
        event.preventDefault();
        const control = target.element.querySelector("input, textarea, select, [tabindex]");
        target.element.scrollIntoView({ block: "center" });
        control?.focus();
      });
      code.replaceChildren(link);
    });
  }

  // -- Submitting
  /** The document to post. A block or variant goes back with every key it came with (an
   * experiment, a flag, whatever the API adds next), the editor's own keys tidied. */
  serialize() {
    const zones = {};
    for (const [name, blocks] of Object.entries(this.doc.zones)) {
      zones[name] = blocks.map((block) => {
        const { variants: _variants, ...out } = block;
        if (!out.id) delete out.id;
        out.data = block.data || {};
        const variants = (Array.isArray(block.variants) ? block.variants : []).map((variant) => {
          if (!isObject(variant)) return variant;
          const kept = { ...variant, segments: variant.segments || [], data: variant.data || {} };
          if (!kept.id) delete kept.id;
          if (!kept.name) delete kept.name;
          return kept;
        });
        if (variants.length) out.variants = variants;
        return out;
      });
    }
    return { fields: this.doc.fields, zones };
  }

  writeDocument() {
    this.form.querySelector('input[name="document"]').value = JSON.stringify(this.serialize());
  }
}

const root = document.getElementById("entry-editor");
const form = document.getElementById("entry-editor-form");
if (root && form) {
  window.entryEditor = new EntryEditor(root, form, config);
}
