// Microsoft 365 section: fills the server-rendered section from the same-origin JSON API (session cookie and
// X-CSRF-Token header) and shows every problem's detail and action next to what the admin was doing.
"use strict";

(() => {
  const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const ACTIVE_RUN = new Set(["queued", "running"]);
  const POLL_MS = 700;

  // ---------- small DOM helpers (text only: data from Microsoft 365 never becomes markup) ----------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else if (key === "hidden" || key === "disabled") node[key] = Boolean(value);
      else node.setAttribute(key, value);
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Actions may carry a URL (the admin-consent page): show it as a link that opens in a new tab.
  function textWithLinks(text) {
    const parts = String(text || "").split(/(https:\/\/[^\s]+)/g);
    return parts.map((part) =>
      /^https:\/\//.test(part)
        ? el("a", { href: part, target: "_blank", rel: "noopener noreferrer" }, "open this link")
        : part,
    );
  }

  function formatTime(value) {
    if (!value) return "";
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) return String(value);
    return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function plural(count, one, many) {
    return `${count} ${count === 1 ? one : many}`;
  }

  // ---------- the JSON API ----------

  class Problem extends Error {
    constructor(body, status) {
      super(body.detail || "Request failed");
      this.body = body;
      this.status = status;
    }
  }

  async function api(section, method, path, body, extraHeaders) {
    const headers = { Accept: "application/json", "X-CSRF-Token": csrfToken, ...(extraHeaders || {}) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(section.dataset.api + path, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new Problem(
        { detail: "The Equa server could not be reached.", action: "Check your connection and try again." },
        0,
      );
    }
    const text = response.status === 204 ? "" : await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      if (data && typeof data === "object" && data.detail) throw new Problem(data, response.status);
      throw new Problem(
        {
          detail: `The server answered with an unexpected error (${response.status}).`,
          action: "Try again; if it persists, contact support.",
        },
        response.status,
      );
    }
    return { status: response.status, data };
  }

  // ---------- problems and notices ----------

  function clearFieldErrors(form) {
    if (!form) return;
    form.querySelectorAll("[data-error-for]").forEach((node) => (node.textContent = ""));
    form.querySelectorAll('[aria-invalid="true"]').forEach((node) => node.removeAttribute("aria-invalid"));
  }

  function problemBox(problem) {
    const body = problem instanceof Problem ? problem.body : { detail: String(problem) };
    const box = el(
      "div",
      { class: "alert alert-error", role: "alert", "data-code": body.code || "" },
      el("p", { class: "alert-title" }, body.detail || "Something went wrong."),
    );
    if (problem instanceof Problem && problem.status === 401) {
      box.append(el("p", { class: "alert-action" }, el("a", { href: "/login" }, "Sign in again")));
      return box;
    }
    if (body.action) box.append(el("p", { class: "alert-action" }, textWithLinks(body.action)));
    if (body.adminConsentUrl) {
      box.append(
        el(
          "p",
          {},
          el(
            "a",
            {
              class: "button button-small",
              href: body.adminConsentUrl,
              target: "_blank",
              rel: "noopener noreferrer",
              "data-role": "consent-link",
            },
            "Open the admin consent page",
          ),
        ),
      );
    }
    if (body.microsoftRequestId) {
      box.append(el("p", { class: "alert-meta" }, `Microsoft request id: ${body.microsoftRequestId}`));
    }
    return box;
  }

  // Shows a problem in `area`; problems naming a field also put their message next to that field.
  function showProblem(area, problem, form) {
    clearFieldErrors(form);
    if (form && problem instanceof Problem && Array.isArray(problem.body.errors)) {
      let placed = false;
      for (const error of problem.body.errors) {
        const slot = form.querySelector(`[data-error-for="${CSS.escape(String(error.field))}"]`);
        if (slot) {
          slot.textContent = error.message;
          form.querySelector(`[name="${CSS.escape(String(error.field))}"]`)?.setAttribute("aria-invalid", "true");
          placed = true;
        }
      }
      if (placed && problem.status === 422 && area) {
        area.replaceChildren();
        form.querySelector('[aria-invalid="true"]')?.focus();
        return;
      }
    }
    if (area) area.replaceChildren(problemBox(problem));
  }

  function notify(section, message) {
    const area = section.querySelector('[data-role="notice"]');
    if (!area) return;
    area.replaceChildren(el("div", { class: "alert alert-success", role: "status" }, el("p", { class: "alert-title" }, message)));
  }

  async function busy(button, work) {
    if (!button) return work();
    button.disabled = true;
    button.classList.add("is-busy");
    button.setAttribute("aria-busy", "true");
    try {
      return await work();
    } finally {
      button.disabled = false;
      button.classList.remove("is-busy");
      button.removeAttribute("aria-busy");
    }
  }

  function confirmAction(message) {
    return window.EquaConfirm ? window.EquaConfirm(message) : Promise.resolve(window.confirm(message));
  }

  // After a link, create or unlink the server redraws the section, so what is shown is what is stored.
  async function redraw(section, notice) {
    const response = await fetch(section.dataset.fragment, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!response.ok) {
      window.location.reload();
      return;
    }
    const holder = document.createElement("div");
    holder.innerHTML = await response.text();
    const fresh = holder.querySelector("#microsoft");
    section.replaceWith(fresh);
    init(fresh);
    if (notice) notify(fresh, notice);
    fresh.querySelector("#microsoft-heading")?.scrollIntoView({ block: "nearest" });
  }

  // ---------- status card ----------

  const HEALTH_TEXT = {
    group_missing: "The group was deleted in Microsoft 365.",
    permission_missing: "The app is missing its Microsoft Graph permissions (admin consent).",
    out_of_scope: "The linked group is outside the groups this organization may use.",
    auth_failed: "This service could not sign in to Microsoft 365.",
    unreachable: "Microsoft 365 could not be reached.",
  };

  const RUN_TEXT = {
    queued: "Queued",
    running: "Running",
    succeeded: "Succeeded",
    partial: "Partly done",
    failed: "Failed",
    abandoned: "Interrupted",
  };

  function stat(label, value, extraClass) {
    return el(
      "div",
      { class: "stat" },
      el("span", { class: "stat-label" }, label),
      el("span", { class: `stat-value ${extraClass || ""}` }, value),
    );
  }

  function lastSyncText(lastSync) {
    if (!lastSync) return "Never";
    const when = formatTime(lastSync.finishedAt || lastSync.startedAt || lastSync.createdAt);
    const result = RUN_TEXT[lastSync.status] || lastSync.status;
    return `${when} · ${result}${lastSync.dryRun ? " (preview)" : ""}`;
  }

  function renderStatus(section, status) {
    const card = section.querySelector('[data-role="status"]');
    const nodes = [];
    if (status.linked) {
      const group = status.group || {};
      nodes.push(
        el(
          "div",
          { class: "status-head" },
          el(
            "div",
            {},
            el("p", { class: "status-title", "data-role": "group-name" }, group.displayName || "Linked group"),
            group.description ? el("p", { class: "status-desc", "data-role": "group-description" }, group.description) : null,
          ),
          el("span", { class: status.health === "ok" ? "tag tag-ok" : "tag tag-bad" }, status.health === "ok" ? "Linked" : "Needs attention"),
        ),
        el(
          "div",
          { class: "status-stats" },
          stat("Members", group.memberCount ?? "—"),
          stat("Last sync", lastSyncText(status.lastSync)),
          stat("Group ID", status.groupId || "", "mono"),
        ),
      );
      const countNode = nodes[1].querySelector(".stat-value");
      countNode.setAttribute("data-role", "member-count");
      if (status.lastSync && status.lastSync.errorMessage) {
        nodes.push(el("p", { class: "muted small" }, `Last sync problem: ${status.lastSync.errorMessage}`));
      }
    } else {
      nodes.push(
        el(
          "div",
          { class: "status-head" },
          el(
            "div",
            {},
            el("p", { class: "status-title" }, "Not linked"),
            el("p", { class: "status-desc" }, "Link an existing Microsoft 365 group, or create a new one, below."),
          ),
          el("span", { class: "tag tag-quiet" }, "Not linked"),
        ),
      );
    }
    if (status.health && status.health !== "ok") {
      const alert = el(
        "div",
        { class: "alert alert-error", role: "alert", "data-health": status.health },
        el("p", { class: "alert-title" }, HEALTH_TEXT[status.health] || "Microsoft 365 reported a problem."),
        status.action ? el("p", { class: "alert-action" }, textWithLinks(status.action)) : null,
      );
      if (status.adminConsentUrl && status.health === "permission_missing") {
        alert.append(
          el(
            "p",
            {},
            el(
              "a",
              { class: "button button-small", href: status.adminConsentUrl, target: "_blank", rel: "noopener noreferrer", "data-role": "consent-link" },
              "Open the admin consent page",
            ),
          ),
        );
      }
      if (status.health === "group_missing") {
        alert.append(el("p", {}, el("button", { class: "button button-small", type: "button", "data-action": "clear-missing" }, "Link or create another group")));
      }
      nodes.push(alert);
    }
    if (status.stale) {
      nodes.push(el("p", { class: "muted small" }, `Microsoft 365 is slow to answer; this summary is ${Math.round(status.ageSeconds || 0)} seconds old.`));
    }
    card.replaceChildren(...nodes);
    card.setAttribute("aria-busy", "false");
  }

  async function loadStatus(section) {
    const card = section.querySelector('[data-role="status"]');
    try {
      const { data } = await api(section, "GET", "/status");
      renderStatus(section, data);
      return data;
    } catch (problem) {
      card.replaceChildren(problemBox(problem));
      card.setAttribute("aria-busy", "false");
      return null;
    }
  }

  // The status summary may be cached for a minute; after a member change the group's own details carry the
  // count that matches the list shown right below it.
  async function refreshMemberCount(section) {
    try {
      const { data } = await api(section, "GET", "/group");
      const count = section.querySelector('[data-role="member-count"]');
      if (count && data.memberCount !== null && data.memberCount !== undefined) count.textContent = String(data.memberCount);
    } catch {
      await loadStatus(section);
    }
  }

  // ---------- not linked: link by id, search, create ----------

  function groupResult(section, choice) {
    const disabled = !choice.linkable;
    const button = el(
      "button",
      {
        class: "button button-small",
        type: "button",
        "data-action": "link-choice",
        "data-group-id": choice.id,
        "aria-label": `Link ${choice.displayName || choice.id}`,
        disabled,
      },
      "Link",
    );
    return el(
      "li",
      { class: `group-result${disabled ? " is-disabled" : ""}`, "data-group-id": choice.id },
      el(
        "div",
        {},
        el("p", { class: "group-result-name" }, choice.displayName || choice.id),
        el("p", { class: "muted small" }, [choice.mail, choice.description].filter(Boolean).join(" · ") || "No description"),
        disabled && choice.reason
          ? el("p", { class: "group-result-reason" }, choice.action ? `${choice.reason} ${choice.action}` : choice.reason)
          : null,
      ),
      button,
    );
  }

  async function linkGroup(section, groupId, form, area, button) {
    await busy(button, async () => {
      try {
        const { data } = await api(section, "POST", "/link-group", { groupId });
        await redraw(section, `Linked to “${data.displayName || groupId}”.`);
      } catch (problem) {
        showProblem(area, problem, form);
      }
    });
  }

  function setUpNotLinked(section) {
    const linkForm = section.querySelector('[data-form="link-id"]');
    const linkArea = section.querySelector('[data-role="link-problem"]');
    linkForm?.addEventListener("submit", (event) => {
      event.preventDefault();
      const groupId = linkForm.elements.groupId.value.trim();
      clearFieldErrors(linkForm);
      if (!groupId) {
        showProblem(linkArea, new Problem({ detail: "groupId: enter a group ID", errors: [{ field: "groupId", message: "Enter the group's ID." }] }, 422), linkForm);
        return;
      }
      linkGroup(section, groupId, linkForm, linkArea, linkForm.querySelector('button[type="submit"]'));
    });

    const search = section.querySelector('[data-role="group-search"]');
    const results = section.querySelector('[data-role="group-results"]');
    const searchStatus = section.querySelector('[data-role="search-status"]');
    // Outside the tenant-wide scope the organization's linkable groups are few: list them at once.
    const listsAll = section.dataset.scope !== "tenant";
    let timer = null;
    let latest = 0;
    const showGroups = async (query) => {
      const ticket = ++latest;
      if (!query && !listsAll) {
        results.replaceChildren();
        searchStatus.textContent = "";
        return;
      }
      searchStatus.textContent = "Searching…";
      try {
        const path = query ? `/groups?search=${encodeURIComponent(query)}` : "/groups";
        const { data } = await api(section, "GET", path);
        if (ticket !== latest) return; // a newer search is on its way; its answer wins
        const items = data.items || [];
        results.replaceChildren(...items.map((choice) => groupResult(section, choice)));
        if (items.length) {
          searchStatus.textContent = `${plural(items.length, "group", "groups")} ${query ? "found" : "can be linked"}${data.nextCursor ? " (refine the name to see others)" : ""}.`;
        } else {
          searchStatus.textContent = query
            ? "No group you can link has a name starting like this."
            : "No group has been granted to this organization yet: create one, or ask an operator to grant one.";
        }
      } catch (problem) {
        if (ticket !== latest) return;
        results.replaceChildren();
        searchStatus.textContent = "";
        results.append(el("li", {}, problemBox(problem)));
      }
    };
    search?.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => showGroups(search.value.trim()), 250);
    });
    if (search && listsAll) showGroups("");
    results?.addEventListener("click", (event) => {
      const button = event.target.closest('[data-action="link-choice"]');
      if (!button || button.disabled) return;
      linkGroup(section, button.dataset.groupId, linkForm, linkArea, button);
    });

    const createForm = section.querySelector('[data-form="create"]');
    const createArea = section.querySelector('[data-role="create-problem"]');
    const preview = section.querySelector('[data-role="nickname-preview"]');
    const updatePreview = () => {
      const explicit = createForm.elements.mailNickname.value.trim();
      const nickname = explicit || deriveNickname(createForm.elements.displayName.value);
      preview.textContent = nickname ? `Mail nickname: ${nickname}${explicit ? "" : " (from the name; a number is added if it is taken)"}` : "";
    };
    if (createForm) {
      createForm.elements.displayName.addEventListener("input", updatePreview);
      createForm.elements.mailNickname.addEventListener("input", updatePreview);
      updatePreview();
      createForm.addEventListener("submit", (event) => {
        event.preventDefault();
        clearFieldErrors(createForm);
        const body = { displayName: createForm.elements.displayName.value.trim() };
        const description = createForm.elements.description.value.trim();
        const nickname = createForm.elements.mailNickname.value.trim();
        if (description) body.description = description;
        if (nickname) body.mailNickname = nickname;
        if (!body.displayName) {
          showProblem(createArea, new Problem({ detail: "displayName: enter a name", errors: [{ field: "displayName", message: "Enter a name for the group." }] }, 422), createForm);
          return;
        }
        // One key per form submission: a retry after a lost answer must not create a second group.
        createForm.dataset.idempotencyKey ||= crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
        busy(createForm.querySelector('button[type="submit"]'), async () => {
          try {
            const { data } = await api(section, "POST", "/create-group", body, {
              "Idempotency-Key": createForm.dataset.idempotencyKey,
            });
            delete createForm.dataset.idempotencyKey;
            await redraw(section, `Created the private group “${data.displayName}” and linked it.`);
          } catch (problem) {
            if (problem instanceof Problem && problem.status > 0 && problem.status < 500) delete createForm.dataset.idempotencyKey;
            showProblem(createArea, problem, createForm);
          }
        });
      });
    }
  }

  function deriveNickname(name) {
    const ascii = name.normalize("NFKD").replace(/[^\x00-\x7f]/g, "").toLowerCase();
    return ascii.replace(/[^a-z0-9-]+/g, "-").replace(/-{2,}/g, "-").replace(/^-+|-+$/g, "").slice(0, 64).replace(/-+$/, "");
  }

  // ---------- linked: members ----------

  function memberRow(member) {
    const name = member.displayName || member.mail || member.userPrincipalName || member.id;
    const address = member.mail || member.userPrincipalName || "";
    const isGuest = member.userType === "Guest";
    return el(
      "tr",
      { "data-member-id": member.id },
      el(
        "td",
        { "data-label": "Member" },
        el(
          "div",
          { class: "person" },
          el("span", { class: "avatar avatar-small", "aria-hidden": "true" }, name.slice(0, 1).toUpperCase()),
          el("div", {}, el("span", { class: "person-name" }, name), el("br"), el("span", { class: "muted small" }, address)),
        ),
      ),
      el("td", { "data-label": "Type" }, el("span", { class: isGuest ? "tag tag-guest" : "tag tag-quiet" }, isGuest ? "Guest" : member.objectType === "user" || !member.objectType ? "Member" : member.objectType)),
      el("td", { "data-label": "Equa" }, member.equaUserId ? el("span", { class: "tag tag-ok", "data-role": "equa-member" }, "Equa member") : el("span", { class: "muted small" }, "Not in the team")),
      el(
        "td",
        { class: "cell-actions" },
        el("button", { class: "button button-small button-danger-quiet", type: "button", "data-action": "remove-member", "data-member-id": member.id, "data-name": name, "aria-label": `Remove ${name} from the group` }, "Remove"),
      ),
    );
  }

  async function loadMembers(section, cursor) {
    const body = section.querySelector('[data-role="members"]');
    const more = section.querySelector('[data-action="more-members"]');
    const area = section.querySelector('[data-role="members-problem"]');
    const summary = section.querySelector('[data-role="members-summary"]');
    const query = cursor ? `?limit=25&cursor=${encodeURIComponent(cursor)}` : "?limit=25";
    try {
      const { data } = await api(section, "GET", `/group/members${query}`);
      area.replaceChildren();
      const rows = data.items.map(memberRow);
      if (cursor) body.append(...rows);
      else body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "4", class: "muted" }, "The group has no members yet."))]));
      more.hidden = !data.nextCursor;
      more.dataset.cursor = data.nextCursor || "";
      const shown = body.querySelectorAll("tr[data-member-id]").length;
      summary.textContent = shown ? `Showing ${plural(shown, "member", "members")}${data.nextCursor ? "; more below" : ""}.` : "";
    } catch (problem) {
      if (!cursor) body.replaceChildren();
      more.hidden = true;
      area.replaceChildren(problemBox(problem));
    }
  }

  function setUpLinked(section) {
    section.querySelector('[data-action="unlink"]')?.addEventListener("click", async (event) => {
      const button = event.currentTarget;
      const name = section.querySelector('[data-role="group-name"]')?.textContent || "the group";
      const ok = await confirmAction(
        `Unlink “${name}” from this organization? The group stays in Microsoft 365 with its members and files; Equa stops managing its membership.`,
      );
      if (!ok) return;
      await busy(button, async () => {
        try {
          await api(section, "DELETE", "/unlink-group");
          await redraw(section, `Unlinked “${name}”. The group still exists in Microsoft 365.`);
        } catch (problem) {
          showProblem(section.querySelector('[data-role="notice"]'), problem);
        }
      });
    });

    section.querySelector('[data-action="more-members"]')?.addEventListener("click", (event) =>
      busy(event.currentTarget, () => loadMembers(section, event.currentTarget.dataset.cursor)),
    );

    section.querySelector('[data-role="members"]')?.addEventListener("click", async (event) => {
      const button = event.target.closest('[data-action="remove-member"]');
      if (!button) return;
      const ok = await confirmAction(`Remove ${button.dataset.name} from the Microsoft 365 group? They stay in the Equa team.`);
      if (!ok) return;
      await busy(button, async () => {
        try {
          await api(section, "DELETE", `/group/members/${encodeURIComponent(button.dataset.memberId)}`);
          notify(section, `Removed ${button.dataset.name} from the group.`);
          await Promise.all([loadMembers(section), refreshMemberCount(section)]);
        } catch (problem) {
          showProblem(section.querySelector('[data-role="members-problem"]'), problem);
        }
      });
    });

    const addForm = section.querySelector('[data-form="add-member"]');
    const addArea = section.querySelector('[data-role="add-member-problem"]');
    addForm?.addEventListener("submit", (event) => {
      event.preventDefault();
      clearFieldErrors(addForm);
      const email = addForm.elements.email.value.trim();
      if (!email) {
        showProblem(addArea, new Problem({ detail: "email: enter an address", errors: [{ field: "email", message: "Enter the person's email address." }] }, 422), addForm);
        return;
      }
      busy(addForm.querySelector('button[type="submit"]'), async () => {
        try {
          const { status, data } = await api(section, "POST", "/group/members", { email });
          addArea.replaceChildren();
          const who = data.member.displayName || email;
          notify(section, status === 201 ? `Added ${who} to the group.` : `${who} already is a member of the group; nothing changed.`);
          addForm.reset();
          await Promise.all([loadMembers(section), refreshMemberCount(section)]);
        } catch (problem) {
          showProblem(addArea, problem, addForm);
        }
      });
    });

    setUpSync(section);
  }

  // ---------- linked: sync, flagged members, settings ----------

  const OUTCOME_TEXT = {
    added: ["Added to the group", "Would be added to the group"],
    removed: ["Removed from the group", "Would be removed from the group"],
    flagged: ["Flagged: in the group, not in the Equa team", "Would be flagged: in the group, not in the Equa team"],
    notInTenant: ["Not found in the tenant", "Not found in the tenant"],
    blockedByPolicy: ["Blocked by the tenant's policy", "Would be blocked by the tenant's policy"],
    failed: ["Failed", "Would fail"],
    alreadyMember: ["Already members", "Already members"],
  };
  const OUTCOME_ORDER = ["failed", "blockedByPolicy", "added", "removed", "flagged", "notInTenant", "alreadyMember"];

  function runProgress(run) {
    const progress = run.progress || {};
    const done = progress.done ?? run.progressDone ?? 0;
    const total = progress.total ?? run.progressTotal ?? 0;
    return { done, total, phase: progress.phase || run.phase || "" };
  }

  async function allOutcomes(section, runId) {
    const items = [];
    let cursor = "";
    for (let page = 0; page < 20; page += 1) {
      const query = cursor ? `?limit=200&cursor=${encodeURIComponent(cursor)}` : "?limit=200";
      const { data } = await api(section, "GET", `/sync-runs/${runId}/outcomes${query}`);
      items.push(...(data.items || []));
      cursor = data.nextCursor;
      if (!cursor) return { items, truncated: false };
    }
    return { items, truncated: true };
  }

  function renderRun(section, run, outcomes) {
    const area = section.querySelector('[data-role="sync-result"]');
    const preview = Boolean(run.dryRun);
    const counts = run.counts || {};
    const chips = OUTCOME_ORDER.filter((key) => counts[key]).map((key) =>
      el("span", { class: "chip", "data-outcome": key }, el("strong", {}, String(counts[key])), OUTCOME_TEXT[key][preview ? 1 : 0]),
    );
    const groups = new Map();
    for (const item of outcomes.items) {
      if (item.outcome === "alreadyMember") continue;
      if (!groups.has(item.outcome)) groups.set(item.outcome, []);
      groups.get(item.outcome).push(item);
    }
    const lists = OUTCOME_ORDER.filter((key) => groups.has(key)).map((key) => [
      el("h5", {}, OUTCOME_TEXT[key][preview ? 1 : 0]),
      el(
        "ul",
        { class: "plain-list", "data-outcome-list": key },
        groups.get(key).map((item) =>
          el(
            "li",
            {},
            el("span", {}, item.displayName ? `${item.displayName} ` : "", el("span", { class: "muted" }, item.email || item.userPrincipalName || item.directoryId || "")),
            item.message ? el("span", { class: "small muted" }, item.message) : null,
          ),
        ),
      ),
    ]);
    const title = preview
      ? "Preview: nothing was changed in Microsoft 365"
      : `Sync ${RUN_TEXT[run.status] ? RUN_TEXT[run.status].toLowerCase() : run.status}`;
    const box = el(
      "div",
      { class: "sync-result", "data-run-status": run.status, "data-dry-run": preview ? "true" : "false" },
      el("h4", {}, title),
      el("p", { class: "muted small" }, run.finishedAt ? `Finished ${formatTime(run.finishedAt)}.` : ""),
      chips.length ? el("div", { class: "chips" }, chips) : el("p", {}, "Everything is already in step: nothing to do."),
      run.error?.message || run.errorMessage
        ? problemBox(new Problem({ detail: run.error?.message || run.errorMessage, action: run.error?.action || run.errorAction, code: run.error?.code || run.errorCode }, 0))
        : null,
      run.status === "partial" ? el("p", { class: "small" }, "Some members could not be handled. Running the sync again finishes the job.") : null,
      lists,
      outcomes.truncated ? el("p", { class: "muted small" }, "Only the first outcomes are listed; the API has them all.") : null,
    );
    area.replaceChildren(box);
  }

  async function runSync(section, dryRun, button) {
    const progressBox = section.querySelector('[data-role="sync-progress"]');
    const bar = progressBox.querySelector(".progress");
    const phase = section.querySelector('[data-role="sync-phase"]');
    const area = section.querySelector('[data-role="sync-result"]');
    const buttons = section.querySelectorAll('[data-action="preview"], [data-action="sync"]');
    await busy(button, async () => {
      buttons.forEach((b) => (b.disabled = true));
      area.replaceChildren();
      progressBox.hidden = false;
      bar.classList.add("is-indeterminate");
      phase.textContent = dryRun ? "Preparing the preview…" : "Starting the sync…";
      try {
        let { data: run } = await api(section, "POST", "/sync-members", { dryRun });
        while (ACTIVE_RUN.has(run.status)) {
          const { done, total, phase: step } = runProgress(run);
          if (total > 0) {
            const percent = Math.min(100, Math.round((done / total) * 100));
            bar.classList.remove("is-indeterminate");
            bar.querySelector("span").style.width = `${percent}%`;
            bar.setAttribute("aria-valuenow", String(percent));
            phase.textContent = `${step ? `${step}: ` : ""}${done} of ${total}`;
          } else {
            phase.textContent = run.status === "queued" ? "Waiting for its turn…" : `${step || "Working"}…`;
          }
          await new Promise((resolve) => setTimeout(resolve, POLL_MS));
          ({ data: run } = await api(section, "GET", `/sync-runs/${run.id}`));
        }
        const outcomes = await allOutcomes(section, run.id);
        renderRun(section, run, outcomes);
        await Promise.all([
          loadFlagged(section),
          dryRun ? null : loadMembers(section),
          dryRun ? null : loadStatus(section).then(() => refreshMemberCount(section)),
        ]);
      } catch (problem) {
        area.replaceChildren(problemBox(problem));
      } finally {
        progressBox.hidden = true;
        bar.classList.remove("is-indeterminate");
        buttons.forEach((b) => (b.disabled = false));
      }
    });
  }

  async function loadFlagged(section) {
    const area = section.querySelector('[data-role="flagged"]');
    if (!area) return;
    try {
      const { data } = await api(section, "GET", "/flagged-members?status=pending");
      const items = data.items || [];
      if (!items.length) {
        area.replaceChildren(el("p", { class: "muted" }, "Nobody is flagged."));
        return;
      }
      area.replaceChildren(
        el(
          "ul",
          { class: "plain-list", "data-role": "flagged-list" },
          items.map((item) => {
            const name = item.displayName || item.email || item.userPrincipalName || item.directoryId;
            return el(
              "li",
              { "data-flagged-id": item.id },
              el("span", {}, el("strong", {}, name), " ", el("span", { class: "muted small" }, item.email || item.userPrincipalName || "")),
              el(
                "span",
                { class: "flagged-actions" },
                el("button", { class: "button button-small button-primary", type: "button", "data-action": "invite", "data-flagged-id": item.id, "data-name": name, "aria-label": `Invite ${name} to the team` }, "Invite"),
                el("button", { class: "button button-small", type: "button", "data-action": "dismiss", "data-flagged-id": item.id, "data-name": name, "aria-label": `Dismiss ${name}` }, "Dismiss"),
              ),
            );
          }),
        ),
      );
    } catch (problem) {
      area.replaceChildren(problemBox(problem));
    }
  }

  function setUpSync(section) {
    section.querySelector('[data-action="preview"]')?.addEventListener("click", (event) => runSync(section, true, event.currentTarget));
    section.querySelector('[data-action="sync"]')?.addEventListener("click", (event) => runSync(section, false, event.currentTarget));

    section.querySelector('[data-role="flagged"]')?.addEventListener("click", async (event) => {
      const button = event.target.closest('[data-action="invite"], [data-action="dismiss"]');
      if (!button) return;
      const invite = button.dataset.action === "invite";
      await busy(button, async () => {
        try {
          const answer = await api(section, "POST", `/flagged-members/${button.dataset.flaggedId}/${invite ? "invite" : "dismiss"}`);
          notify(
            section,
            !invite
              ? `${button.dataset.name} is no longer flagged.`
              : answer.data && answer.data.invitationUrl
                ? `${button.dataset.name} is invited. Send them this link (it works once, for 7 days, and is not shown again): ${answer.data.invitationUrl}`
                : `${button.dataset.name} is already on the Equa team.`,
          );
          await loadFlagged(section);
        } catch (problem) {
          showProblem(section.querySelector('[data-role="flagged"]'), problem);
        }
      });
    });

    const form = section.querySelector('[data-form="sync-settings"]');
    const area = section.querySelector('[data-role="settings-problem"]');
    form?.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(form.querySelector('button[type="submit"]'), async () => {
        try {
          const body = { autoSync: form.elements.autoSync.checked, removeDeparted: form.elements.removeDeparted.checked };
          const { data } = await api(section, "PATCH", "/settings", body);
          form.elements.autoSync.checked = Boolean(data.autoSync);
          form.elements.removeDeparted.checked = Boolean(data.removeDeparted);
          area.replaceChildren();
          notify(section, "Sync settings saved.");
        } catch (problem) {
          showProblem(area, problem, form);
        }
      });
    });
  }

  // ---------- start ----------

  function init(section) {
    section.addEventListener("click", async (event) => {
      const button = event.target.closest('[data-action="clear-missing"]');
      if (!button) return;
      // Reading the group clears a link to a deleted group on the server; the redraw then offers link and create.
      await busy(button, async () => {
        try {
          await api(section, "GET", "/group");
        } catch {
          /* the expected answer is 409 microsoft_group_missing */
        }
        await redraw(section, "The link to the deleted group was cleared. Link or create another group.");
      });
    });
    loadStatus(section);
    if (section.dataset.linked === "true") {
      setUpLinked(section);
      loadMembers(section);
      loadFlagged(section);
    } else {
      setUpNotLinked(section);
    }
  }

  const section = document.getElementById("microsoft");
  if (section) init(section);
})();
