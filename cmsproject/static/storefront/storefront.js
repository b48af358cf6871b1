// The demo storefront: a shop page that uses only the public API.
// - content: GET /api/v1/deliver/page/home/ (blocks already resolved for this visitor)
// - behaviour: POST /api/v1/events/ (page_view), purchases through the shop backend (/demo/purchase/)
// - live: one WebSocket subscribed to customer:me (segment changes) and content:page:home
//   (publishes). Either makes the page fetch its delivery again and re-render: no reload, no polling.
//   When the socket drops (a server restart, the network), it reconnects with backoff and resumes
//   each topic from the last id it saw: the server replays what was missed, or answers `reset`
//   and the page fetches that resource again.
// - cart: the state of a cross-device session (GET|PUT /api/v1/sessions/<token>/state/), live on
//   session:<token>. A `#session=<token>` link opens the same cart on another device.
(function () {
  "use strict";

  const PAGE = { type: "page", slug: "home" };
  const RECONNECT_MIN_MS = 500;
  const RECONNECT_MAX_MS = 10000;
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

  // One delivery request at a time; asked again meanwhile, it runs once more when that one ends,
  // so a burst of events costs two requests and a slow answer never overwrites a newer one.
  const pageLoad = { running: false, again: false };

  async function loadPage() {
    if (pageLoad.running) {
      pageLoad.again = true;
      return;
    }
    pageLoad.running = true;
    try {
      do {
        pageLoad.again = false;
        await fetchPage();
      } while (pageLoad.again);
    } finally {
      pageLoad.running = false;
    }
  }

  async function fetchPage() {
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
      const add = element("button", { type: "button", class: "add", "data-add-to-cart": product.slug }, "Add to cart");
      add.addEventListener("click", () => cartChange({ op: "add", product: product.slug, name: f.name, price: f.price }));
      list.append(element("li", {}, element("strong", {}, f.name), element("div", {}, f.category || ""), button, " ", add));
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


  // --- The cart: state of a cross-device session ----------------------------------------------
  // Whoever holds the session token may read and write the cart, so the token is a long random
  // secret kept in localStorage and handed to another device only through the share link.
  // Every change is an *action* (add, decrement, remove) queued in localStorage, then written as
  // the queue applied to the last state the server confirmed, with If-Match: <its version>. A 409
  // brings the current state: the queue is applied again on top of it and written again. So a
  // change made offline, or at the same moment as another device's, is merged, never lost.
  const SESSION_KEY = "cms-session-token";
  const SESSION_TOKEN = /^[A-Za-z0-9_-]{32,128}$/;
  const RETRY_MAX_MS = 10000;

  function newSessionToken() {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function sessionFromLink() {
    const token = new URLSearchParams(location.hash.slice(1)).get("session");
    return token && SESSION_TOKEN.test(token) ? token : null;
  }

  function sessionToken() {
    const joined = sessionFromLink();
    if (joined) {
      localStorage.setItem(SESSION_KEY, joined);
      // The token is a secret: keep it out of the address bar, bookmarks and screenshots.
      history.replaceState(null, "", location.pathname + location.search);
      return joined;
    }
    let token = localStorage.getItem(SESSION_KEY);
    if (!token || !SESSION_TOKEN.test(token)) {
      token = newSessionToken();
      localStorage.setItem(SESSION_KEY, token);
    }
    return token;
  }

  const session = {
    token: sessionToken(),
    confirmed: { version: 0, state: {} }, // what the server last said
    loaded: false,
    pending: [], // actions not written yet, oldest first
    syncing: false,
    retryMs: 0,
    retryTimer: null,
  };
  const sessionUrl = `/api/v1/sessions/${session.token}/state/`;
  const pendingKey = `cms-session-pending:${session.token}`;
  try {
    const queued = JSON.parse(localStorage.getItem(pendingKey) || "[]");
    session.pending = Array.isArray(queued) ? queued : [];
  } catch (error) {
    session.pending = []; // an unreadable queue is dropped, not fatal
  }
  const cart = document.getElementById("cart");
  const cartSync = document.getElementById("cart-sync");
  const shareLink = document.getElementById("session-link");
  shareLink.href = `${location.origin}${location.pathname}#session=${session.token}`;

  function applyAction(state, action) {
    const items = (Array.isArray(state.cart) ? state.cart : []).map((item) => ({ ...item }));
    const found = items.find((item) => item.product === action.product);
    if (action.op === "add") {
      if (found) found.quantity += 1;
      else items.push({ product: action.product, name: action.name, price: action.price, quantity: 1 });
    } else if (action.op === "decrement" && found) {
      found.quantity -= 1;
    } else if (action.op === "remove" && found) {
      found.quantity = 0;
    }
    return { ...state, cart: items.filter((item) => item.quantity > 0) };
  }

  function savePending() {
    localStorage.setItem(pendingKey, JSON.stringify(session.pending));
  }

  function setSync(state, text) {
    cartSync.dataset.state = state;
    cartSync.textContent = text;
  }

  function renderCart() {
    const items = session.pending.reduce(applyAction, session.confirmed.state).cart || [];
    const rows = items.map((item) => {
      const row = element(
        "li",
        { "data-cart-product": item.product },
        element("span", { class: "name" }, item.name || item.product),
        element("span", { class: "quantity", "data-testid": "cart-quantity" }, String(item.quantity)),
        element("span", { class: "price" }, `× $${item.price}`),
      );
      for (const [op, label, title] of [["decrement", "−", "One less"], ["add", "+", "One more"], ["remove", "Remove", null]]) {
        const button = element("button", { type: "button", "data-cart-action": op, title }, label);
        button.addEventListener("click", () => cartChange({ op, product: item.product, name: item.name, price: item.price }));
        row.append(button);
      }
      return row;
    });
    document.getElementById("cart-items").replaceChildren(...rows);
    document.getElementById("cart-empty").hidden = rows.length > 0;
    const count = items.reduce((sum, item) => sum + item.quantity, 0);
    const total = items.reduce((sum, item) => sum + item.quantity * (Number(item.price) || 0), 0);
    document.getElementById("cart-count").textContent = String(count);
    document.getElementById("cart-total").textContent = `$${total}`;
    cart.dataset.version = String(session.confirmed.version);
  }

  // `authoritative`: the server's answer to our own request. A pushed or fetched state is taken
  // only when newer, so a late message never rolls the cart back.
  function adopt(remote, authoritative) {
    if (authoritative || remote.version > session.confirmed.version) {
      session.confirmed = { version: remote.version, state: remote.state || {} };
    }
  }

  function cartChange(action) {
    session.pending.push(action);
    savePending();
    renderCart();
    flush();
  }

  function retryLater(text) {
    session.retryMs = Math.min(RETRY_MAX_MS, (session.retryMs || 500) * 2);
    setSync("offline", text);
    clearTimeout(session.retryTimer);
    session.retryTimer = setTimeout(sync, session.retryMs);
  }

  function queuedText() {
    const n = session.pending.length;
    return n ? `offline: ${n} change${n === 1 ? "" : "s"} will be saved when back online` : "offline";
  }

  async function loadSession() {
    let response;
    try {
      response = await fetch(sessionUrl, { headers: { "X-Anonymous-Id": visitor }, cache: "no-store" });
    } catch (error) {
      retryLater(queuedText());
      return;
    }
    if (!response.ok) {
      retryLater(`the cart could not be loaded (${response.status})`);
      return;
    }
    adopt(await response.json(), false);
    session.loaded = true;
    session.retryMs = 0;
    renderCart();
    if (session.pending.length) flush();
    else setSync("saved", "saved");
  }

  async function flush() {
    if (session.syncing || !session.loaded) return;
    session.syncing = true;
    try {
      while (session.pending.length) {
        const sending = session.pending.length;
        setSync("saving", "saving…");
        let response;
        try {
          response = await fetch(sessionUrl, {
            method: "PUT",
            headers: {
              "Content-Type": "application/json",
              "If-Match": `"${session.confirmed.version}"`,
              "X-Anonymous-Id": visitor,
            },
            body: JSON.stringify({ state: session.pending.reduce(applyAction, session.confirmed.state) }),
          });
        } catch (error) {
          retryLater(queuedText()); // offline: the queue stays, in localStorage too
          return;
        }
        if (response.ok) {
          adopt(await response.json(), true);
          session.pending.splice(0, sending);
          session.retryMs = 0;
        } else if (response.status === 409) {
          adopt(await response.json(), true); // another device wrote first: replay on theirs
        } else if (response.status === 429 || response.status >= 500) {
          retryLater(`saving again soon (${response.status})`);
          return;
        } else {
          // 400, 413, 428: these changes can never be written; drop them, keep the cart usable.
          session.pending.splice(0, sending);
          setSync("error", `a change was refused (${response.status})`);
        }
        savePending();
        renderCart();
      }
      if (cartSync.dataset.state !== "error") setSync("saved", "saved");
    } finally {
      session.syncing = false;
    }
  }

  function sync() {
    return session.loaded ? flush() : loadSession();
  }

  function sessionEvent(event) {
    if (event.topic !== `session:${session.token}`) return;
    adopt(event.data, false);
    renderCart();
  }

  window.addEventListener("online", sync);
  window.addEventListener("hashchange", () => {
    const joined = sessionFromLink();
    if (joined && joined !== session.token) {
      localStorage.setItem(SESSION_KEY, joined);
      location.reload(); // a pasted share link: open that cart
    }
  });

  // --- The live socket: reconnect with backoff, resume each topic from the last id it saw -------
  const live = {
    topics: {
      "customer:me": loadPage, // segments changed: the delivery differs
      [`content:${PAGE.type}:${PAGE.slug}`]: loadPage,
      [`session:${session.token}`]: loadSession,
    },
    lastIds: {}, // topic -> the newest event id received on it
    connectedBefore: false,
    retryMs: 0,
  };

  function idOrder(id) {
    const found = /^(\d+)-(\d+)$/.exec(id || "");
    return found ? [Number(found[1]), Number(found[2])] : null;
  }

  function remember(topic, id) {
    const seen = idOrder(live.lastIds[topic]);
    const next = idOrder(id);
    const newer = !seen || !next || next[0] > seen[0] || (next[0] === seen[0] && next[1] > seen[1]);
    if (id && newer) live.lastIds[topic] = id;
  }

  function connect() {
    const socket = new WebSocket(`${JSON.parse(document.getElementById("ws-url").textContent)}?anonymous_id=${encodeURIComponent(visitor)}`);
    socket.addEventListener("open", () => {
      const refresh = new Set();
      for (const topic of Object.keys(live.topics)) {
        const request = { action: "subscribe", topic };
        if (live.connectedBefore && live.lastIds[topic]) {
          request.last_id = live.lastIds[topic]; // replayed, or answered with `reset`
        } else if (live.connectedBefore) {
          refresh.add(live.topics[topic]); // nothing to resume from: fetch what may have changed
        }
        socket.send(JSON.stringify(request));
      }
      for (const load of refresh) load();
      status.textContent = "live";
      status.dataset.state = "live";
      live.connectedBefore = true;
    });
    socket.addEventListener("message", (message) => {
      const event = JSON.parse(message.data);
      if (event.type === "subscribed") {
        live.retryMs = 0; // the server is back for real: the next drop retries quickly again
      } else if (event.type === "reset") {
        delete live.lastIds[event.topic];
        if (live.topics[event.topic]) live.topics[event.topic]();
      } else if (event.topic && event.id) {
        remember(event.topic, event.id);
        if (event.type === "segments.changed" || event.type.startsWith("content.")) {
          loadPage();
        } else if (event.type === "session.state") {
          sessionEvent(event);
        }
      }
    });
    socket.addEventListener("close", () => {
      status.textContent = "reconnecting…";
      status.dataset.state = "offline";
      // Backoff with jitter: a restarted server is not met by every page at the same instant.
      live.retryMs = Math.min(RECONNECT_MAX_MS, (live.retryMs || RECONNECT_MIN_MS / 2) * 2);
      setTimeout(connect, live.retryMs * (0.5 + Math.random() / 2));
    });
  }

  loadPage();
  loadProducts();
  renderCart();
  loadSession();
  connect();
  sendEvent("page_view", { path: location.pathname });
})();
