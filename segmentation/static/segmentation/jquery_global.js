/* jQuery QueryBuilder attaches itself to a global `jQuery`; the admin keeps its jQuery as
 * `django.jQuery` (jquery.init.js). Hand it that one, so the page loads a single jQuery. */
"use strict";
window.jQuery = window.jQuery || window.django.jQuery;
