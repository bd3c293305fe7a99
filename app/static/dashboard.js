// Cascade's dashboard, made live: parts of the page arrive over Server-Sent Events and
// replace themselves by id; countdowns and ages tick locally; the pause form sends the
// admin token as a Bearer header. Without this file the page still shows everything.
"use strict";
(() => {
  const root = document.documentElement;
  const skew = Date.parse(root.dataset.now) - Date.now(); // the server's clock is the truth
  const now = () => Date.now() + skew;

  // As app/durations.py's spoken: the two largest adjacent units, "2h 14m", "2h", "45s".
  const UNITS = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
  function human(ms) {
    const seconds = Math.max(0, Math.round(ms / 1000));
    const index = UNITS.findIndex(([, size]) => seconds >= size || size === 1);
    const [unit, size] = UNITS[index];
    let text = `${Math.floor(seconds / size)}${unit}`;
    if (size > 1) {
      const [smaller, smallerSize] = UNITS[index + 1];
      const rest = Math.floor((seconds % size) / smallerSize);
      if (rest) text += ` ${rest}${smaller}`;
    }
    return text;
  }

  function tick() {
    for (const el of document.querySelectorAll("[data-countdown]")) {
      const left = Date.parse(el.getAttribute("datetime")) - now();
      el.textContent = left > 0 ? human(left) : "a moment";
    }
    for (const el of document.querySelectorAll("[data-ago]")) {
      el.textContent = `${human(now() - Date.parse(el.getAttribute("datetime")))} ago`;
    }
  }

  function swap(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const fresh = template.content.firstElementChild;
    if (!fresh || !fresh.id) return;
    const focused = document.activeElement ? document.activeElement.id : "";
    const old = document.getElementById(fresh.id);
    if (old) old.replaceWith(fresh);
    else if (fresh.id.startsWith("service-")) document.getElementById("services").append(fresh);
    if (fresh.classList.contains("fleet-service")) {
      show(fresh, opened.has(fresh.id));
      filter();
    }
    const again = focused && document.getElementById(focused);
    if (again && again !== document.activeElement) again.focus({ preventScroll: true });
    tick();
  }

  // The fleet table: a click on a row (or Enter on its name) opens the service's detail
  // under it; the filter hides rows; the summary counts every row, shown or not.
  const opened = new Set(); // the ids of open services, kept across redraws
  function show(body, open) {
    body.classList.toggle("is-open", open);
    const link = body.querySelector(".opener");
    if (link) link.setAttribute("aria-expanded", String(open));
  }
  document.addEventListener("click", (event) => {
    const row = event.target.closest(".fleet-row");
    if (!row) return;
    event.preventDefault(); // the name's link would jump; no-script pages follow it instead
    const body = row.parentElement;
    const open = !opened.has(body.id);
    if (open) opened.add(body.id);
    else opened.delete(body.id);
    show(body, open);
  });

  // Up and down arrows go from a service's name to the next one shown (a hundred rows are
  // a hundred tab stops otherwise).
  document.addEventListener("keydown", (event) => {
    if (!["ArrowDown", "ArrowUp"].includes(event.key)) return;
    if (!event.target.classList || !event.target.classList.contains("opener")) return;
    const shown = [...document.querySelectorAll("tbody.fleet-service:not([hidden]) .opener")];
    const next = shown[shown.indexOf(event.target) + (event.key === "ArrowDown" ? 1 : -1)];
    if (next) {
      event.preventDefault();
      next.focus();
    }
  });

  const NEEDS_ME = new Set(["blocked", "failed", "paused"]);
  const filterForm = document.getElementById("filter");
  const filterText = document.getElementById("filter-text");
  const filterMine = document.getElementById("filter-mine");
  function filter() {
    const bodies = [...document.querySelectorAll("tbody.fleet-service")];
    if (filterForm) {
      const words = filterText.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
      let shown = 0;
      for (const body of bodies) {
        const search = body.dataset.search || "";
        const match = words.every((word) => search.includes(word));
        const keep = match && (!filterMine.checked || NEEDS_ME.has(body.dataset.kind));
        body.hidden = !keep;
        shown += keep;
      }
      const filtering = words.length || filterMine.checked;
      document.getElementById("filter-shown").textContent = filtering
        ? `${shown} of ${bodies.length} shown`
        : "";
    }
    // written only when different: the summary is a live region, read out when it changes
    const write = (el, text) => {
      if (el && el.textContent !== text) el.textContent = text;
    };
    write(document.querySelector("#summary .total"), `${bodies.length} services`);
    for (const count of document.querySelectorAll("#summary .count")) {
      const n = bodies.filter((body) => body.dataset.kind === count.dataset.kind).length;
      write(count.querySelector("b"), String(n));
      count.classList.toggle("is-zero", n === 0);
    }
  }
  if (filterForm) {
    filterForm.hidden = false;
    filterForm.addEventListener("submit", (event) => event.preventDefault());
    filterText.addEventListener("input", filter);
    filterMine.addEventListener("change", filter);
    filter(); // a browser may have kept what was typed before a reload
  }

  const live = document.getElementById("live");
  function say(state, text) {
    live.dataset.state = state;
    live.textContent = text;
  }
  if ("EventSource" in window) {
    const source = new EventSource(root.dataset.stream);
    source.addEventListener("open", () => say("live", "Live: changes appear as they happen."));
    source.addEventListener("error", () => say("lost", "Connection lost; reconnecting…"));
    source.addEventListener("swap", (event) => swap(event.data));
  }

  // Escape hides the reason shown on hover or focus (WCAG 1.4.13).
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && document.activeElement.classList.contains("chip")) {
      document.activeElement.classList.add("dismissed");
    }
  });
  document.addEventListener("focusout", (event) => {
    if (event.target.classList && event.target.classList.contains("chip")) {
      event.target.classList.remove("dismissed");
    }
  });

  // "2h", "1h30m" become a time from now; anything else goes to Cascade as written.
  function until(text) {
    if (!text) return null;
    const match = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
    if (match && match.slice(1).some(Boolean)) {
      const [d, h, m, s] = match.slice(1).map((v) => Number(v || 0));
      return new Date(now() + (((d * 24 + h) * 60 + m) * 60 + s) * 1000).toISOString();
    }
    if (Number.isNaN(Date.parse(text))) {
      throw new Error(`"${text}" is neither a duration (2h, 30m) nor a time (2026-05-01T18:00Z)`);
    }
    return text;
  }

  async function refusal(response) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail;
    } catch (_) {
      // not JSON: the status text says enough
    }
    return `Refused (${response.status}): ${typeof detail === "string" ? detail : JSON.stringify(detail)}`;
  }

  const form = document.getElementById("pause-form");
  if (form) {
    form.hidden = false;
    document.getElementById("no-script").remove();
    const result = document.getElementById("control-result");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const fields = form.elements;
      const pausing = !event.submitter || event.submitter.value === "pause";
      const service = fields.service.value || null;
      const scope = service ? `service ${service}` : "everything";
      const headers = { Authorization: `Bearer ${fields.token.value.trim()}` };
      let request;
      if (pausing) {
        const reason = fields.reason.value.trim();
        if (!reason) {
          result.textContent = "Say why before pausing: the reason is shown to everyone.";
          fields.reason.focus();
          return;
        }
        let body;
        try {
          body = { reason, service, until: until(fields.until.value.trim()), by: fields.by.value.trim() || null };
        } catch (error) {
          result.textContent = error.message;
          fields.until.focus();
          return;
        }
        headers["Content-Type"] = "application/json";
        request = fetch("pause", { method: "POST", headers, body: JSON.stringify(body) });
      } else {
        const query = service ? `?service=${encodeURIComponent(service)}` : "";
        request = fetch(`pause${query}`, { method: "DELETE", headers });
      }
      result.textContent = "Sending…";
      try {
        const response = await request;
        result.textContent = response.ok
          ? `${pausing ? "Paused" : "Resumed"} ${scope}.`
          : await refusal(response);
      } catch (error) {
        result.textContent = `Cannot reach Cascade: ${error.message}`;
      }
    });
  }

  tick();
  setInterval(tick, 1000);
})();
