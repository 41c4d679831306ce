// dam-dedupe HTML report: renders clusters and registers from the embedded facts.
// Strings from stores are only ever written as text nodes (el() below), never as markup.
(function () {
  'use strict';
  var PAGE = 40;
  var ROWS = 200;
  var MIB = 1024 * 1024;
  var data = null;
  var thumbs = null;
  var shown = [];
  var rendered = 0;
  var review = {};
  var storeKey = '';

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (key === 'class') node.className = value;
      else if (key === 'onclick') node.addEventListener('click', value);
      else node.setAttribute(key, value);
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      [].concat(child).forEach(function (c) { node.append(c instanceof Node ? c : String(c)); });
    }
    return node;
  }

  function readable(uri) {  // a URI as people read it: percent-escapes decoded (香港, not %E9%A6%99)
    try { return decodeURI(uri); } catch (e) { return uri; }
  }

  function size(n) {
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + ' ' + units[i];
  }

  function money(x) {
    return (x > 0 && x < 0.01 ? '< 0.01' : x.toFixed(2)) + ' ' + data.currency;
  }

  async function unpack(id) {
    var text = $(id).textContent.trim();
    var response = await fetch('data:application/gzip;base64,' + text);
    var stream = response.body.pipeThrough(new DecompressionStream('gzip'));
    return new Response(stream).arrayBuffer();
  }

  // -- review decisions -------------------------------------------------------------------------

  function decisionsOf(id) {
    if (!review[id]) review[id] = { cluster: null, canonical: null, excluded: [] };
    return review[id];
  }

  function decisionsDocument() {
    var list = [];
    Object.keys(review).sort().forEach(function (id) {
      var r = review[id];
      if (r.cluster) list.push({ cluster: id, decision: r.cluster });
      if (r.canonical) list.push({ cluster: id, decision: 'canonical', uri: r.canonical });
      r.excluded.forEach(function (uri) { list.push({ cluster: id, decision: 'exclude_member', uri: uri }); });
    });
    return { exported_by: $('reviewer').value.trim(), exported_at: new Date().toISOString(), decisions: list };
  }

  function saveReview() {
    var count = decisionsDocument().decisions.length;
    $('decision-count').textContent = count + (count === 1 ? ' decision' : ' decisions');
    try { localStorage.setItem(storeKey, JSON.stringify(review)); } catch (e) { /* storage may be off: keep in memory */ }
  }

  function loadReview() {
    try { review = JSON.parse(localStorage.getItem(storeKey) || '{}') || {}; } catch (e) { review = {}; }
  }

  function exportDecisions() {
    var doc = decisionsDocument();
    if (!doc.exported_by) {
      $('export-status').textContent = 'Enter your name as reviewer first.';
      $('reviewer').focus();
      return;
    }
    var blob = new Blob([JSON.stringify(doc, null, 1)], { type: 'application/json' });
    var link = el('a', { href: URL.createObjectURL(blob), download: 'dam-dedupe-decisions.json' });
    document.body.append(link);
    link.click();
    link.remove();
    $('export-status').textContent = 'Exported ' + doc.decisions.length + ' decisions.';
  }

  function decide(cluster, change) {
    change(decisionsOf(cluster.id));
    saveReview();
    var old = $('card-' + cluster.id);
    if (old) old.replaceWith(card(cluster));
  }

  // -- cluster cards ----------------------------------------------------------------------------

  function thumbnail(index) {
    var side = data.thumb_side;
    var canvas = el('canvas', { width: side, height: side, 'aria-hidden': 'true' });
    if (index < 0 || !thumbs || !side) return canvas;
    var pixels = new ImageData(side, side);
    var offset = index * Math.ceil(side * side / 2);
    for (var i = 0; i < side * side; i++) {
      var byte = thumbs[offset + (i >> 1)];
      var v = ((i & 1) ? byte & 15 : byte >> 4) * 17;
      pixels.data[i * 4] = v; pixels.data[i * 4 + 1] = v; pixels.data[i * 4 + 2] = v; pixels.data[i * 4 + 3] = 255;
    }
    canvas.getContext('2d').putImageData(pixels, 0, 0);
    return canvas;
  }

  // A member's picture: its colour preview where the page carries one, else the grey thumbnail.
  function picture(m) {
    var src = m.p >= 0 && data.previews ? data.previews[m.p] : null;
    if (!src) return thumbnail(m.t);
    return el('img', { class: 'preview', src: src, alt: '', loading: 'lazy' });
  }

  // Compare a copy with its canonical: side by side, blinking between them, or their difference.
  function compareView(canonical, copy) {
    var a = data.previews[canonical.p], b = data.previews[copy.p];
    var left = el('img', { class: 'preview', src: a, alt: 'canonical' });
    var right = el('img', { class: 'preview', src: b, alt: 'copy' });
    var diff = el('canvas', { class: 'difference', width: 160, height: 160 });
    var blink = el('img', { class: 'preview blink', src: a, alt: 'blink' });
    var timer = null;
    function drawDifference() {
      var ia = new Image(), ib = new Image(), ready = 0;
      function both() {
        if (++ready < 2) return;
        var w = Math.max(ia.width, ib.width), h = Math.max(ia.height, ib.height);
        diff.width = w; diff.height = h;
        var g = diff.getContext('2d');
        g.drawImage(ia, 0, 0, w, h);
        g.globalCompositeOperation = 'difference';
        g.drawImage(ib, 0, 0, w, h);
        g.globalCompositeOperation = 'source-over';
      }
      ia.onload = both; ib.onload = both; ia.src = a; ib.src = b;
    }
    var panel = el('div', { class: 'compare', role: 'dialog', 'aria-label': 'compare with the canonical' },
      el('figure', null, left, el('figcaption', null, 'canonical: ' + canonical.name)),
      el('figure', null, right, el('figcaption', null, 'copy: ' + copy.name)),
      el('figure', null, blink, el('figcaption', null, 'blinking between them')),
      el('figure', null, diff, el('figcaption', null, 'difference (black where they agree)')),
      el('button', { type: 'button', class: 'close-compare', onclick: function () {
        if (timer) clearInterval(timer);
        panel.remove();
      } }, 'Close'));
    timer = setInterval(function () { blink.src = blink.src === a ? b : a; }, 700);
    drawDifference();
    return panel;
  }

  function pct(x) { return Math.round(x * 100) + '%'; }

  // The evidence in words a reviewer can judge ("resized to 50%, converted from JPEG to PNG, 4% cropped on the
  // left"); the measurements stay one click away for an auditor.
  function evidenceWords(ev) {
    if (!ev || ev.relation === 'canonical') return '';
    if (ev.sha256) return 'byte-identical (SHA-256 ' + ev.sha256.slice(0, 12) + '…)';
    var words = [];
    var a = ev.size && ev.size.a, b = ev.size && ev.size.b;
    if (ev.symmetry && ev.symmetry !== 'identity') words.push('turned or mirrored (' + ev.symmetry + ')');
    if (ev.crop && ev.crop.margins) {
      var m = ev.crop.margins, sides = ['left', 'top', 'right', 'bottom'], cut = [];
      m.forEach(function (v, i) { if (v >= 0.005) cut.push(pct(v) + ' ' + sides[i]); });
      words.push((ev.crop.of === 'second' ? 'cropped ' : 'the canonical is the crop, ') + (cut.join(', ') || 'slightly'));
    } else if (a && b && (a[0] !== b[0] || a[1] !== b[1])) {
      words.push((b[0] * b[1] < a[0] * a[1] ? 'resized to ' : 'enlarged to ') + pct(b[0] / a[0]) + ' (' + b[0] + '×' + b[1] + ')');
    }
    if (ev.format && ev.format.a !== ev.format.b) words.push('converted from ' + ev.format.a + ' to ' + ev.format.b);
    else if (ev.format) words.push('re-encoded');
    (ev.relation || []).forEach(function (r) {
      if (/^(greyscale|colourised|colour-shifted|brightness|contrast|locally edited)/.test(r)) words.push(r);
    });
    if (ev.thumbnail && ev.thumbnail.changed_area > 0.004) words.push('changed area ' + pct(ev.thumbnail.changed_area));
    return words.join(', ');
  }

  function evidenceDetails(ev) {
    if (!ev || !ev.hashes) return null;
    var rows = Object.keys(ev.hashes).map(function (k) {
      var h = ev.hashes[k];
      return k + ' hash: ' + (h.distance === null ? 'n/a' : h.distance + ' of ' + h.bits + ' bits differ');
    });
    if (ev.thumbnail) rows.push('thumbnail residual ' + ev.thumbnail.residual + ' (all ' + ev.thumbnail.residual_all + '), edge strip ' + ev.thumbnail.edge_strip);
    if (ev.fine) rows.push('fine residual ' + ev.fine.residual + ', hotspot ' + ev.fine.hotspot);
    if (ev.colour_distance !== null && ev.colour_distance !== undefined) rows.push('colour distance ' + ev.colour_distance);
    return el('details', { class: 'evidence' }, el('summary', null, 'measurements'), el('div', null, rows.join('\n')));
  }

  function relationText(ev) {
    var r = ev && ev.relation;
    return Array.isArray(r) ? r.join(', ') : (r && r !== 'canonical' ? r : '');
  }

  function factsText(m) {
    var parts = [];
    Object.keys(m.analyses || {}).forEach(function (name) {
      var a = m.analyses[name];
      if (a.error) parts.push(name + ' failed: ' + a.error);
      Object.keys(a.facts).forEach(function (k) {
        if (!(k === 'faces' && a.facts[k] === '0')) parts.push(k.replace(/_/g, ' ') + ': ' + a.facts[k]);
      });
    });
    return parts.join(' · ');
  }

  function member(cluster, m, r) {
    var canonical = r.canonical ? r.canonical === m.uri : m.canonical;
    var excluded = r.excluded.indexOf(m.uri) >= 0;
    var role = canonical ? (r.canonical ? 'canonical (reviewer)' : 'canonical') : m.match;
    var node = el('div', { class: 'member' + (canonical ? ' canonical' : '') + (excluded ? ' excluded' : ''), 'data-uri': m.uri },
      picture(m),
      el('span', { class: 'role' }, role), ' ', el('span', { class: 'relation' }, relationText(m.evidence)),
      el('div', null, el('b', { class: 'name' }, m.name)),
      el('div', { class: 'path' }, m.path),
      m.embedded_in ? el('div', { class: 'muted embedded' }, 'referenced in ' + readable(m.embedded_in) + ' (never acted on)') : '',
      m.source_name && m.path.indexOf(m.source_name) !== 0
        ? el('div', null, m.source_name + (m.residency ? ' (' + m.residency + ')' : '')) : '',
      el('div', null, size(m.size) + (m.width ? ' · ' + m.width + '×' + m.height + ' ' + (m.format || '') : '')),
      el('div', { class: 'muted' }, 'modified ' + (m.modified || 'unknown')),
      el('div', { class: 'words' }, evidenceWords(m.evidence)),
      evidenceDetails(m.evidence) || '',
      el('div', { class: 'facts' }, factsText(m)));
    var original = cluster.members.filter(function (x) { return x.canonical; })[0];
    if (!canonical && original && m.p >= 0 && original.p >= 0) {
      node.append(el('button', { type: 'button', class: 'compare-button', onclick: function () {
        var open = node.parentNode.parentNode.querySelector('.compare');
        if (open) open.querySelector('.close-compare').click();
        node.parentNode.after(compareView(original, m));
      } }, 'Compare with canonical'));
    }
    if (!canonical) {
      node.append(el('button', { type: 'button', class: 'make-canonical', onclick: function () {
        decide(cluster, function (d) {
          d.canonical = m.canonical ? null : m.uri;
          d.excluded = d.excluded.filter(function (u) { return u !== m.uri; });
        });
      } }, 'Make canonical'));
    }
    node.append(el('button', { type: 'button', class: 'exclude-member', onclick: function () {
      decide(cluster, function (d) {
        d.excluded = excluded ? d.excluded.filter(function (u) { return u !== m.uri; }) : d.excluded.concat([m.uri]);
      });
    } }, excluded ? 'Include this copy' : 'Exclude this copy'));
    return node;
  }

  function clusterButton(cluster, r, decision, label) {
    var active = r.cluster === decision;
    return el('button', { type: 'button', class: 'decide-' + decision, 'aria-pressed': String(active),
      onclick: function () { decide(cluster, function (d) { d.cluster = active ? null : decision; }); } },
      active ? label + ' ✓' : label);
  }

  function card(c) {
    var r = decisionsOf(c.id);
    var badges = [el('span', { class: 'badge tier' }, c.risk.tier || 'no risk tier')];
    if (c.personal_data) badges.push(el('span', { class: 'badge pd' }, 'personal data'));
    if (c.licensed) badges.push(el('span', { class: 'badge lic' }, c.licensed_spread ? 'licensed, copied across' : 'licensed'));
    if (c.cross_jurisdiction) badges.push(el('span', { class: 'badge xj' }, c.residencies.join(' + ')));
    if (c.decided || r.cluster) badges.push(el('span', { class: 'badge ok' }, 'decided'));
    if (c.format_changes && c.format_changes.length) {
      badges.push(el('span', { class: 'badge fmt', title: 'a redirect would serve the canonical\'s format to ' +
        'consumers of these copies; redirect plans leave them out unless made with -p formats=any' },
        c.format_changes.length + ' in another format'));
    }
    var node = el('div', { class: 'card' + (c.decided || r.cluster ? ' decided' : ''), id: 'card-' + c.id },
      el('h3', null, c.id + ' · ' + c.copies + ' copies · ' + size(c.reclaimable_bytes) + ' reclaimable · ' +
        money(c.monthly_cost) + ' a month', badges),
      el('div', { class: 'reason' }, 'Canonical: ' + c.canonical_reason),
      c.risk.reasons.length ? el('div', { class: 'muted' }, 'Risk: ' + c.risk.reasons.join('; ')) : null,
      Object.keys(c.rights).length ? el('div', { class: 'muted' }, 'Rights: ' + Object.keys(c.rights).map(function (k) {
        return k.replace(/_/g, ' ') + ': ' + c.rights[k];
      }).join(' · ')) : null);
    c.decisions.forEach(function (d) {
      node.append(el('div', { class: 'stored-decision' }, 'Decided in the catalog: ' + d.decision.replace(/_/g, ' ') +
        (d.uri ? ' ' + d.uri : '') + ' by ' + d.decided_by + ' at ' + d.decided_at));
    });
    var members = el('div', { class: 'members' });
    c.members.forEach(function (m) { members.append(member(c, m, r)); });
    node.append(members, el('div', { class: 'actions' },
      clusterButton(c, r, 'exclude', 'Exclude cluster'), clusterButton(c, r, 'keep_all', 'Keep all'),
      clusterButton(c, r, 'not_duplicates', 'Not duplicates')));
    return node;
  }

  // -- filtering and sorting --------------------------------------------------------------------

  function matches(c, f) {
    if (f.source && c.sources.indexOf(f.source) < 0) return false;
    if (f.match && c.match_kinds.indexOf(f.match) < 0) return false;
    if (f.tier && c.risk.tier !== f.tier) return false;
    if (c.reclaimable_bytes < f.min) return false;
    var decided = c.decided || !!(review[c.id] && review[c.id].cluster);
    if (f.flag === 'decided' && !decided) return false;
    if (f.flag === 'undecided' && decided) return false;
    if (['personal_data', 'licensed', 'licensed_spread', 'cross_jurisdiction'].indexOf(f.flag) >= 0 && !c[f.flag]) return false;
    if (f.text) {
      if (c.id.toLowerCase().indexOf(f.text) >= 0) return true;
      return c.members.some(function (m) { return (m.path + ' ' + m.name).toLowerCase().indexOf(f.text) >= 0; });
    }
    return true;
  }

  var SORTS = {
    risk: null,
    reclaimable: function (c) { return -c.reclaimable_bytes; },
    cost: function (c) { return -c.monthly_cost; },
    copies: function (c) { return -c.copies; },
    size: function (c) { return -Math.max.apply(null, c.members.map(function (m) { return m.size; })); }
  };

  function applyFilters() {
    var f = {
      text: $('f-text').value.trim().toLowerCase(), source: $('f-source').value, match: $('f-match').value,
      tier: $('f-tier').value, flag: $('f-flag').value, min: (parseFloat($('f-min').value) || 0) * MIB
    };
    shown = data.clusters.filter(function (c) { return matches(c, f); });
    var key = SORTS[$('f-sort').value];
    if (key) {
      var keyed = shown.map(function (c, i) { return [key(c), i, c]; });
      keyed.sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
      shown = keyed.map(function (k) { return k[2]; });
    }
    $('cards').replaceChildren();
    rendered = 0;
    renderMore();
  }

  function renderMore() {
    var end = Math.min(shown.length, rendered + PAGE);
    var fragment = document.createDocumentFragment();
    for (; rendered < end; rendered++) fragment.append(card(shown[rendered]));
    $('cards').append(fragment);
    $('cluster-count').textContent = 'Showing ' + rendered + ' of ' + shown.length + ' matching clusters (' +
      data.clusters.length + ' in all).';
    var more = $('more-cards');
    more.replaceChildren();
    if (rendered < shown.length) {
      more.append(el('button', { type: 'button', class: 'more', onclick: renderMore }, 'Show ' + Math.min(PAGE, shown.length - rendered) + ' more'));
    }
  }

  // -- tables -----------------------------------------------------------------------------------

  function clusterLink(id) {
    return el('a', { href: '#clusters', onclick: function () { $('f-text').value = id; applyFilters(); } }, id);
  }

  function table(target, headings, rows, cells) {
    var box = $(target);
    if (!rows.length) { box.replaceChildren(el('p', { class: 'muted' }, 'None.')); return; }
    var body = el('tbody');
    var grid = el('table', { class: 'grid' }, el('thead', null, el('tr', null, headings.map(function (h) { return el('th', null, h); }))), body);
    var count = 0;
    var more = el('div');
    function page() {
      var end = Math.min(rows.length, count + ROWS);
      for (; count < end; count++) {
        body.append(el('tr', null, cells(rows[count]).map(function (v) { return el('td', null, v); })));
      }
      more.replaceChildren();
      if (count < rows.length) more.append(el('button', { type: 'button', class: 'more', onclick: page }, 'Show more (' + (rows.length - count) + ' left)'));
    }
    box.replaceChildren(grid, more);
    page();
  }

  function tables() {
    var register = [];
    data.register.forEach(function (e) {
      e.locations.forEach(function (l) { register.push([e, l]); });
    });
    table('register-table', ['Image', 'Faces', 'Copies', 'Location', 'Source', 'Residency', 'Size', 'Modified'], register, function (row) {
      var e = row[0], l = row[1];
      return [e.cluster ? clusterLink(e.cluster) : e.image, e.faces, e.copies, l.path, l.source_name, l.residency || 'not set', size(l.size), l.modified || ''];
    });
    table('licensed-table', ['Cluster', 'Copies', 'Sources', 'Departments', 'Copied across', 'Rights'], data.licensed, function (l) {
      return [clusterLink(l.cluster), l.copies, l.sources.join(', '), l.departments.join(', '), l.spread ? 'yes' : 'no',
        Object.keys(l.rights).map(function (k) { return k.replace(/_/g, ' ') + ': ' + l.rights[k]; }).join(' · ')];
    });
    table('jurisdiction-table', ['Cluster', 'Residencies', 'Locations'], data.cross_jurisdiction, function (x) {
      return [clusterLink(x.cluster), x.residencies.join(', '), x.locations.map(function (l) {
        return l.path + ' (' + (l.residency || 'not set') + ')';
      }).join('\n')];
    });
  }

  // -- start ------------------------------------------------------------------------------------

  function fillSelect(id, values) {
    values.forEach(function (v) { $(id).append(el('option', { value: v }, v)); });
  }

  async function start() {
    data = JSON.parse(new TextDecoder().decode(await unpack('report-data')));
    thumbs = new Uint8Array(await unpack('thumb-data'));
    storeKey = 'dam-dedupe-review:' + data.generated + ':' + data.clusters.length;
    loadReview();
    fillSelect('f-source', data.sources);
    fillSelect('f-tier', data.risk_tiers);
    ['f-source', 'f-match', 'f-tier', 'f-flag', 'f-sort', 'f-min'].forEach(function (id) {
      $(id).addEventListener('change', applyFilters);
    });
    var timer = null;
    $('f-text').addEventListener('input', function () { clearTimeout(timer); timer = setTimeout(applyFilters, 150); });
    $('export').addEventListener('click', exportDecisions);
    saveReview();
    applyFilters();
    tables();
  }

  window.damDedupeReport = {
    ready: start().catch(function (error) {
      $('cluster-count').textContent = 'This browser could not open the report data: ' + error;
      throw error;
    }),
    decisionsDocument: decisionsDocument,
    applyFilters: applyFilters
  };
})();
