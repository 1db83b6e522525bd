// skiff ui: applies the server's operations (server-rendered HTML fragments) to the page.
// No framework, no build step: the server sends what changed, this file puts it in place.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const roots = $('roots'), orphans = $('orphans'), timeline = $('timeline');
  const nsSelect = $('ns'), search = $('q'), status = $('status'), notices = $('notices');
  const MAX_LINES = 500;
  const namespaces = new Set();

  // The list a node's children go in, or null while the parent is not on the page.
  const kidsOf = (id) => {
    const el = document.getElementById(id);
    return el && el.parentElement !== orphans ? el.querySelector(':scope > ul.kids') : null;
  };

  const insertSorted = (list, li) => {
    for (const c of list.children) {
      if (c !== li && c.dataset.sort > li.dataset.sort) { list.insertBefore(li, c); return; }
    }
    list.appendChild(li);
  };

  const visible = (el) => {
    const ns = nsSelect.value, q = search.value.trim().toLowerCase();
    return (!ns || el.dataset.ns === ns) && (!q || el.textContent.toLowerCase().includes(q));
  };
  const filterCard = (li) => {
    const card = li.closest('#roots > li');
    if (card) card.hidden = !visible(card);
  };
  const filterAll = () => {
    for (const card of roots.children) card.hidden = !visible(card);
    for (const line of timeline.children) line.hidden = !visible(line);
  };

  const addNamespace = (ns) => {
    if (!ns || namespaces.has(ns)) return;
    namespaces.add(ns);
    const opt = new Option(ns, ns);
    const after = [...nsSelect.options].slice(1).find((o) => o.value > ns);
    nsSelect.add(opt, after || null);
  };

  const put = (op) => {
    let li = document.getElementById(op.id);
    const fresh = !li;
    if (fresh) {
      li = document.createElement('li');
      li.id = op.id;
      li.innerHTML = '<div class="self"></div><ul class="kids"></ul>';
    }
    li.className = `node k-${op.kind} s-${op.state}`;
    li.dataset.state = op.state;
    li.dataset.ns = op.ns;
    li.dataset.sort = op.sort;
    const self = li.firstElementChild;
    self.innerHTML = op.html;
    for (const seg of self.querySelectorAll('[data-w]')) seg.style.width = `${seg.dataset.w}%`;
    const parent = op.parent || '';
    if (fresh || li.dataset.parent !== parent || li.parentElement === orphans) {
      li.dataset.parent = parent;
      const list = parent ? kidsOf(parent) : roots;
      insertSorted(list || orphans, li);
      // Children that arrived before this node.
      const kids = li.querySelector(':scope > ul.kids');
      for (const o of [...orphans.children]) if (o.dataset.parent === op.id) insertSorted(kids, o);
    }
    addNamespace(op.ns);
    filterCard(li);
  };

  const del = (op) => {
    const li = document.getElementById(op.id);
    if (!li) return;
    const kids = li.querySelector(':scope > ul.kids');
    for (const k of [...kids.children]) orphans.appendChild(k);
    const card = li.parentElement && li.parentElement.closest('#roots > li');
    li.remove();
    if (card) filterCard(card);
  };

  const line = (op) => {
    const tpl = document.createElement('template');
    tpl.innerHTML = op.html;
    const li = tpl.content.firstElementChild;
    if (!li) return;
    li.hidden = !visible(li);
    timeline.prepend(li);
    while (timeline.children.length > MAX_LINES) timeline.lastElementChild.remove();
  };

  const apply = (ops) => {
    for (const op of ops) {
      switch (op.op) {
        case 'reset':
          roots.replaceChildren(); orphans.replaceChildren();
          timeline.replaceChildren(); notices.replaceChildren();
          break;
        case 'put': put(op); break;
        case 'del': del(op); break;
        case 'line': line(op); break;
        case 'notice': {
          const li = document.createElement('li');
          li.textContent = op.text;
          notices.appendChild(li);
          break;
        }
      }
    }
  };

  // Live updates; EventSource reconnects by itself and the server starts with a snapshot.
  const connect = () => {
    const source = new EventSource('/events');
    source.addEventListener('batch', (e) => {
      apply(JSON.parse(e.data));
      document.body.dataset.live = 'true';
    });
    source.onopen = () => { status.textContent = 'Live: updates arrive as the cluster changes.'; };
    source.onerror = () => {
      document.body.dataset.live = 'false';
      status.textContent = 'Disconnected: reconnecting…';
    };
  };

  // Click-through: the object's desired (spec) and actual (status) YAML side by side.
  const dialog = $('yaml');
  document.addEventListener('click', async (e) => {
    const button = e.target.closest('button[data-obj]');
    if (!button) return;
    const path = button.dataset.obj;
    const response = await fetch(`/object/${path.split('/').map(encodeURIComponent).join('/')}`);
    $('yaml-title').textContent = path;
    $('yaml-body').innerHTML = response.ok
      ? await response.text()
      : `<p>${response.status}: this object is no longer in the view.</p>`;
    dialog.showModal();
  });

  nsSelect.addEventListener('change', filterAll);
  search.addEventListener('input', filterAll);
  connect();
})();
