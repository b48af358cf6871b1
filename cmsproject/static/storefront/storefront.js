// The demo storefront: a shop page that uses only the public API.
// - content: GET /api/v1/deliver/page/home/ (blocks already resolved for this visitor)
// - behaviour: POST /api/v1/events/ (page_view), purchases through the shop backend (/demo/purchase/)
// - live: one WebSocket subscribed to customer:me (segment changes) and content:page:home
//   (publishes). Either makes the page fetch its delivery again and re-render: no reload, no polling.
(function () {
  "use strict";

  const PAGE = { type: "page", slug: "home" };
  const RECONNECT_MS = 1000;
  const page = document.getElementById("page");
  const status = document.getElementById("live-status");
  let spent = 0;

  function anonymousId() {
    let id = localStorage.getItem("cms-anonymous-id");
    if (!id) {
      id = "anon-" + crypto.randomUUID();
      localStorage.setItem("cms-anonymous-id", id);
    }
    return id;
  }
  const visitor = anonymousId();
  document.getElementById("anonymous-id").textContent = visitor;

  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== undefined && value !== null) node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child !== undefined && child !== null) node.append(child);
    }
    return node;
  }

  // Rich text arrives sanitized by the CMS (nh3); it is still parsed inert, never as script.
  function richText(html) {
    const template = document.createElement("template");
    template.innerHTML = html || "";
    return template.content;
  }

  const renderers = {
    hero(data, block) {
      return element(
        "div",
        { class: "hero" + (data.theme === "dark" ? " dark" : ""), "data-block": block.id, "data-component": "hero" },
        element("h1", { "data-testid": "hero-heading" }, data.heading),
        data.subheading ? element("p", {}, data.subheading) : null,
        data.cta_label ? element("a", { class: "cta", href: data.cta_url || "#" }, data.cta_label) : null,
      );
    },
    rich_text(data, block) {
      return element("div", { class: "block", "data-block": block.id }, richText(data.body));
    },
    cta(data, block) {
      return element(
        "div",
        { class: "block", "data-block": block.id },
        data.description ? element("p", {}, data.description) : null,
        element("a", { href: data.url }, data.label),
      );
    },
    faq(data, block) {
      const list = element("dl", {});
      for (const item of data.items || []) {
        list.append(element("dt", {}, item.question), element("dd", {}, richText(item.answer)));
      }
      return element("div", { class: "block", "data-block": block.id }, data.title ? element("h3", {}, data.title) : null, list);
    },
  };

  function render(delivery) {
    const blocks = (delivery.data.zones.body || []).map((block) => {
      const draw = renderers[block.component];
      return draw ? draw(block.data, block) : element("div", { class: "block" }, block.component);
    });
    page.replaceChildren(...blocks);
    page.dataset.state = "ready";
    page.dataset.segments = delivery.meta.segments.join(" ");
  }

  async function loadPage() {
    const response = await fetch(`/api/v1/deliver/${PAGE.type}/${PAGE.slug}/`, {
      headers: { "X-Anonymous-Id": visitor },
      cache: "no-store",
    });
    if (!response.ok) {
      page.replaceChildren(element("p", {}, `The page could not be loaded (${response.status}).`));
      return;
    }
    render(await response.json());
  }

  async function sendEvent(type, properties) {
    await fetch("/api/v1/events/", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ type, anonymousId: visitor, properties }),
    });
  }

  async function loadProducts() {
    const response = await fetch("/api/v1/content/product/?page_size=20");
    if (!response.ok) return;
    const list = document.getElementById("products");
    for (const product of (await response.json()).results) {
      const f = product.fields;
      const button = element("button", { type: "button", "data-product": product.slug }, `Buy for $${f.price}`);
      button.addEventListener("click", () => buy(product, button));
      list.append(element("li", {}, element("strong", {}, f.name), element("div", {}, f.category || ""), button));
    }
  }

  async function buy(product, button) {
    button.disabled = true;
    try {
      const response = await fetch("/demo/purchase/", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ anonymousId: visitor, product: product.slug }),
      });
      if (response.ok) {
        spent += (await response.json()).amount;
        document.getElementById("spent").textContent = `$${spent}`;
      }
    } finally {
      button.disabled = false;
    }
  }

  let connectedBefore = false;

  function connect() {
    const socket = new WebSocket(`${JSON.parse(document.getElementById("ws-url").textContent)}?anonymous_id=${encodeURIComponent(visitor)}`);
    socket.addEventListener("open", () => {
      for (const topic of ["customer:me", `content:${PAGE.type}:${PAGE.slug}`]) {
        socket.send(JSON.stringify({ action: "subscribe", topic }));
      }
      status.textContent = "live";
      status.dataset.state = "live";
      if (connectedBefore) loadPage(); // what changed while the socket was down
      connectedBefore = true;
    });
    socket.addEventListener("message", (message) => {
      const event = JSON.parse(message.data);
      if (event.type === "segments.changed" || event.type.startsWith("content.")) {
        loadPage();
      }
    });
    socket.addEventListener("close", () => {
      status.textContent = "reconnecting…";
      status.dataset.state = "offline";
      setTimeout(connect, RECONNECT_MS);
    });
  }

  loadPage();
  loadProducts();
  connect();
  sendEvent("page_view", { path: location.pathname });
})();
