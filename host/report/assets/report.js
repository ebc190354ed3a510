// report.js: embedded in report.html at build time (host/report/embed.py).
// Sorts a table.sortable by the clicked header: numbers by value (a cell's
// data-v holds the raw number where it shows a formatted one), text in
// natural order, empty cells last; a second click reverses the order.
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.addEventListener('click', function () {
    var table = th.closest('table');
    var body = table.tBodies[0];
    var column = Array.prototype.indexOf.call(th.parentNode.children, th);
    var ascending = th.getAttribute('aria-sort') !== 'ascending';
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
    function key(row) {
      var cell = row.cells[column];
      if (!cell) return '';
      var v = cell.getAttribute('data-v');
      return v === null ? cell.textContent.trim() : v;
    }
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var x = key(r1), y = key(r2);
      if (x === '' || y === '') return x === y ? 0 : (x === '' ? 1 : -1);
      var nx = Number(x), ny = Number(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y, undefined, {numeric: true});
      return ascending ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
