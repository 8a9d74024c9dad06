// Holocron dashboard: polls /api/status and redraws in place; retry buttons and the search box call the API.
// Same-origin requests carry the session cookie, so no token ever lives in this script. The page runs under a
// Content-Security-Policy of this server's own script and stylesheet only: no inline code or styles.
"use strict";

const POLL_MS = 3000;
const STATUSES = ["NEW", "RUNNING", "SUCCEEDED", "FAILED", "DEADLETTER", "CANCELLED"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  return node;
}

function setText(selector, value) {
  const node = document.querySelector(selector);
  if (node) node.textContent = String(value);
}

function stamp(iso) {
  return iso ? iso.slice(0, 19).replace("T", " ") : "";
}

function emptyRow(colspan, text) {
  return el("tr", {}, el("td", { colspan: String(colspan), class: "muted" }, text));
}

function jobRows(body, jobs, label, queue = "vector") {
  body.replaceChildren(
    ...(jobs.items.length
      ? jobs.items.map((job) =>
          el("tr", { dataset: { jobId: job.job_id } },
            el("td", {}, job.job_id), el("td", {}, job.job_type), el("td", {}, `${job.attempts}/${job.max_attempts}`),
            el("td", { class: "reason" }, job.reason || ""),
            el("td", {}, el("button", { class: "retry", dataset: { jobId: job.job_id, queue } }, label))))
      : [emptyRow(5, "none")]),
  );
}

function drawChart(throughput) {
  const chart = document.getElementById("throughput-chart");
  const buckets = throughput.buckets;
  const max = (key) => Math.max(1, ...buckets.map((b) => b[key]));
  const peaks = { jobs_succeeded: max("jobs_succeeded"), chunks_written: max("chunks_written"), embeddings_written: max("embeddings_written") };
  chart.replaceChildren(
    ...buckets.map((b) => {
      const col = el("div", { class: "col", title: `${stamp(b.start_utc)}: ${b.jobs_succeeded} jobs, ${b.chunks_written} chunks, ${b.embeddings_written} embeddings` });
      for (const [key, cls] of [["jobs_succeeded", "jobs"], ["chunks_written", "chunks"], ["embeddings_written", "emb"]]) {
        const bar = el("div", { class: `b ${cls}` });
        bar.style.height = `${(100 * b[key]) / peaks[key]}%`;
        col.append(bar);
      }
      col.append(el("span", { class: "tick" }, stamp(b.start_utc).slice(11, 16)));
      return col;
    }),
  );
}

function render(o) {
  setText("#generated", stamp(o.generated_utc));
  const q = o.queue;
  setText('[data-testid="queue-depth"]', q.depth);
  setText('[data-testid="queue-available"]', q.available);
  setText('[data-testid="queue-oldest"]', q.oldest_available_age_s === null ? "–" : `${Math.round(q.oldest_available_age_s)} s`);
  for (const status of STATUSES) setText(`[data-testid="queue-status-${status}"]`, q.by_status[status] ?? 0);
  const types = Object.entries(q.by_type);
  document.querySelector("#queue-by-type tbody").replaceChildren(
    ...(types.length
      ? types.map(([type, counts]) =>
          el("tr", { "data-testid": `queue-type-${type}` }, el("td", {}, type),
            ...STATUSES.map((s) => el("td", { "data-status": s }, counts[s] ?? 0))))
      : [emptyRow(7, "no jobs")]),
  );
  drawChart(o.throughput);
  setText('[data-testid="deadletter-total"]', o.dead_letters.total);
  setText('[data-testid="failed-total"]', o.failed_jobs.total);
  jobRows(document.getElementById("deadletters"), o.dead_letters, "Retry");
  jobRows(document.getElementById("failed"), o.failed_jobs, "Retry now");
  document.getElementById("runs-body").replaceChildren(
    ...(o.runs.length
      ? o.runs.map((r) =>
          el("tr", { dataset: { runId: r.run_id } }, el("td", {}, stamp(r.started_utc)), el("td", {}, r.run_type),
            el("td", { class: `status-${r.status.toLowerCase()}` }, r.status), el("td", {}, r.seconds ?? ""),
            el("td", {}, r.metrics.chunks_written ?? ""), el("td", {}, r.metrics.embeddings_written ?? ""),
            el("td", { class: "reason" }, r.error || "")))
      : [emptyRow(7, "no runs yet")]),
  );
  document.getElementById("spaces-body").replaceChildren(
    ...(o.spaces.length
      ? o.spaces.map((s) => {
          const pct = (s.coverage || 0) * 100;
          const fill = el("div");
          fill.style.width = `${pct.toFixed(1)}%`;
          return el("tr", { dataset: { space: s.name } }, el("td", {}, s.name), el("td", {}, s.model_name), el("td", {}, s.dimensions),
            el("td", { "data-testid": "coverage-count" }, `${s.chunks_embedded} / ${s.chunks_total}`),
            el("td", {}, el("div", { class: "bar" }, fill), ` ${pct.toFixed(1)}%`));
        })
      : [emptyRow(5, "no spaces yet")]),
  );
  renderLlm(o.llm);
  renderCrawl(o.crawl);
  setText('[data-testid="sources-total"]', o.sources.total);
  setText('[data-testid="chunks-total"]', o.sources.chunks);
  setText("#sources-by-status", Object.entries(o.sources.by_status).map(([k, v]) => `${k} ${v}`).join(", "));
}

function renderCrawl(crawl) {
  for (const state of ["pending", "claimed", "completed", "failed"]) {
    setText(`[data-testid="crawl-${state}"]`, crawl.items[state] ?? 0);
  }
}

function renderLlm(llm) {
  setText('[data-testid="llm-depth"]', llm.queue.depth);
  setText('[data-testid="llm-succeeded"]', llm.run_counts.SUCCEEDED ?? 0);
  setText('[data-testid="llm-deadletter"]', llm.dead_letters.total);
  setText('[data-testid="llm-stale"]', llm.run_counts.stale ?? 0);
  setText('[data-testid="llm-pages"]', llm.pages_classified);
  document.getElementById("llm-runs-body").replaceChildren(
    ...(llm.runs.length
      ? llm.runs.map((r) =>
          el("tr", { dataset: { runId: r.run_id } }, el("td", {}, stamp(r.started_utc)), el("td", {}, r.interrogation),
            el("td", { class: "reason" }, r.subject || ""),
            el("td", { class: `status-${r.status.toLowerCase()}` }, r.status + (r.stale ? " (stale)" : "")),
            el("td", {}, r.valid_on_attempt ?? ""), el("td", {}, r.model_seconds ?? ""), el("td", {}, r.seconds ?? ""),
            el("td", { class: "reason" }, r.error || "")))
      : [emptyRow(8, "no answers yet")]),
  );
  jobRows(document.getElementById("llm-deadletters"), llm.dead_letters, "Retry", "llm");
}

async function refresh() {
  try {
    const response = await fetch("/api/status", { headers: { Accept: "application/json" } });
    if (response.status === 401) { window.location = "/login"; return; }
    if (response.ok) render(await response.json());
  } catch (err) {
    console.warn("status refresh failed", err);
  }
}

async function retry(button) {
  button.disabled = true;
  button.textContent = "retrying…";
  const prefix = button.dataset.queue === "llm" ? "/api/llm/jobs" : "/api/jobs";
  const response = await fetch(`${prefix}/${button.dataset.jobId}/retry`, { method: "POST" });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    button.textContent = body.detail || `failed (${response.status})`;
  }
  await refresh();
}

async function search(event) {
  event.preventDefault();
  const query = document.getElementById("search-query").value.trim();
  if (!query) return;
  const mode = document.getElementById("search-mode").value || null;
  const k = Number(document.getElementById("search-k").value) || 5;
  const status = document.getElementById("search-status");
  const list = document.getElementById("search-results");
  status.textContent = "searching…";
  const response = await fetch("/api/search", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ query, k, mode }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    status.textContent = `error: ${body.detail || response.status}`;
    list.replaceChildren();
    return;
  }
  status.textContent = `${body.hits.length} hits in ${body.space} (${body.mode}, ${body.latency_ms.toFixed(0)} ms)`;
  list.replaceChildren(
    ...body.hits.map((h) =>
      el("li", { class: "hit" },
        el("div", { class: "hit-head" },
          el("span", { class: "score" }, h.score.toFixed(4)), " ",
          el("a", { href: h.source_url, target: "_blank", rel: "noopener" }, h.title || h.source_id),
          h.heading_path.length ? el("span", { class: "path" }, ` › ${h.heading_path.join(" › ")}`) : ""),
        el("p", { class: "snippet" }, ...marked(h.snippet, h.highlights)))),
  );
}

// A snippet as text nodes with its matching words in <mark>: built as nodes, never as HTML.
function marked(text, highlights) {
  const parts = [];
  let at = 0;
  for (const [start, end] of highlights) {
    if (start > at) parts.push(text.slice(at, start));
    parts.push(el("mark", {}, text.slice(start, end)));
    at = end;
  }
  if (at < text.length) parts.push(text.slice(at));
  return parts;
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.retry");
  if (button) retry(button);
});
document.getElementById("search-form").addEventListener("submit", search);
// The page's Content-Security-Policy admits no inline styles: server-rendered bars carry their width as data.
for (const bar of document.querySelectorAll("[data-width]")) bar.style.width = `${bar.dataset.width}%`;
drawChart(JSON.parse(document.getElementById("initial-overview").textContent).throughput);
setInterval(refresh, POLL_MS);
