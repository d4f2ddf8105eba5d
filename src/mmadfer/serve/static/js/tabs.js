// The four workspaces as WAI-ARIA tabs: one tab in the Tab order (roving tabindex), arrows/Home/End move and select.
const listeners = [];
const tabs = () => [...document.querySelectorAll('[role="tab"]')];

export function onTab(fn) { listeners.push(fn); }

export function showTab(name, { focus = false } = {}) {
  for (const tab of tabs()) {
    const on = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    document.getElementById(tab.getAttribute("aria-controls")).hidden = !on;
    if (on && focus) tab.focus();
  }
  document.body.dataset.tab = name;
  for (const fn of listeners) fn(name);
}

export function initTabs() {
  for (const tab of tabs()) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
    tab.addEventListener("keydown", (e) => {
      const all = tabs();
      const i = all.indexOf(tab);
      const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: all.length - 1 }[e.key];
      if (to === undefined) return;
      e.preventDefault();
      showTab(all[(to + all.length) % all.length].dataset.tab, { focus: true });
    });
  }
}
