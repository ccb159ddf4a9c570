// The clinic pages' script (served at /static/admin.js; the CSP allows no inline script). The
// pages work without it; it only asks before a case is deleted.
(function () {
  "use strict";
  var form = document.getElementById("delete-form");
  if (form) {
    form.addEventListener("submit", function (e) {
      if (!window.confirm("Delete this case's photo, result and notes for good? Its history stays.")) e.preventDefault();
    });
  }
})();
