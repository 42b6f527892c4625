// The demo host page embeds the widget the way a site would, with options from the query
// string (?lang=fa, ?prechat=on) so each can be tried without editing HTML. ?lang makes the
// page itself that language (its <html lang>), as a site in that language would be; the widget
// follows the page.
const q = new URLSearchParams(location.search);
const s = document.createElement("script");
s.src = "/widget.js";
s.dataset.site = q.get("site") || "demo";
const lang = q.get("lang");
if (lang && /^[a-z]{2}(-[A-Za-z]{2})?$/.test(lang)) document.documentElement.lang = lang;
if (q.get("prechat") === "on") s.dataset.prechat = "on";
document.body.append(s);
