#!/bin/sh
# Opens pages of an atlas site in headless Chromium from file:// and checks
# that each one loads with every image, its stylesheet and every link it
# makes, and that nothing reaches the console; then screenshots them.
#
#   tests/atlas_browser.sh SITE OUT [PAGE...]
#
# PAGE is relative to SITE; default: index.html, the first layer page and
# the first channel page. Screenshots go to OUT/<page with / as _>.png.
# Exit status: 0 all good, 1 a check failed, 77 Chromium is not installed
# (the status ctest and automake read as "skipped").
#
# How: the site has no scripts of its own, so a harness page in OUT loads
# each page into an iframe and inspects it after its load event: images
# that did not decode have naturalWidth 0, a stylesheet that failed throws
# on cssRules, and a link target that does not exist fails a synchronous
# XMLHttpRequest. --allow-file-access-from-files lets a file:// page read
# other file:// documents. Failures Chromium reports itself (script errors,
# blocked loads) appear in its log as CONSOLE lines; there must be none.
set -eu

site=${1:?usage: atlas_browser.sh SITE OUT [PAGE...]}
out=${2:?usage: atlas_browser.sh SITE OUT [PAGE...]}
shift 2

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
    echo "atlas_browser: chromium is not installed (apt-get install chromium)" >&2
    exit 77
fi

site=$(cd "$site" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ $# -eq 0 ]; then
    layer=$(ls "$site/layer" | sort | head -n 1)
    chdir=$(ls "$site/channel" | sort | head -n 1)
    channel=$(ls "$site/channel/$chdir" | sort -n | head -n 1)
    set -- index.html "layer/$layer" "channel/$chdir/$channel"
fi

profile=$(mktemp -d "$out/chromium-profile.XXXXXX")
trap 'rm -rf "$profile"' EXIT

# Flags for a root container without a GPU or network: no sandbox (root),
# no GPU process, and no background services that would try the network.
run_chromium() {
    "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" --enable-logging=stderr --v=0 "$@"
}

urls=""
for p in "$@"; do
    [ -f "$site/$p" ] || { echo "atlas_browser: no page $site/$p" >&2; exit 1; }
    urls="$urls\"file://$site/$p\","
done

cat > "$out/harness.html" <<EOF
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>atlas check</title></head><body>
<pre id="result">pending</pre>
<script>
var pages = [$urls], out = [], left = pages.length;
function check(url, d) {
  var bad = 0, imgs = d.images;
  for (var i = 0; i < imgs.length; i++)
    if (!imgs[i].complete || imgs[i].naturalWidth === 0) {
      bad++;
      out.push("FAIL image " + url + " " + imgs[i].getAttribute("src"));
    }
  var sheets = d.querySelectorAll("link[rel=stylesheet]").length, rules = 0;
  for (var s = 0; s < d.styleSheets.length; s++) {
    try { rules += d.styleSheets[s].cssRules.length; }
    catch (e) { out.push("FAIL stylesheet " + url + " " + d.styleSheets[s].href); }
  }
  if (sheets && !rules) out.push("FAIL stylesheet " + url + " has no rules");
  var links = d.querySelectorAll("a[href]");
  for (var k = 0; k < links.length; k++) {
    var href = links[k].href;
    if (href.indexOf("file://") !== 0) { out.push("FAIL external link " + url + " " + href); continue; }
    try {
      var x = new XMLHttpRequest();
      x.open("GET", href, false);
      x.send();
    } catch (e) { out.push("FAIL link " + url + " " + links[k].getAttribute("href")); }
  }
  out.push("page " + url + ": " + imgs.length + " images, " + bad + " broken, " + links.length + " links");
}
pages.forEach(function (url) {
  var f = document.createElement("iframe");
  f.style.width = "1280px";
  f.style.height = "900px";
  f.onload = function () {
    try { check(url, f.contentDocument); }
    catch (e) { out.push("FAIL cannot inspect " + url + ": " + e); }
    if (--left === 0) document.getElementById("result").textContent = out.join("\n") + "\nDONE";
  };
  f.src = url;
  document.body.appendChild(f);
});
</script>
</body></html>
EOF

status=0
run_chromium --allow-file-access-from-files --virtual-time-budget=30000 --dump-dom \
    "file://$out/harness.html" > "$out/harness.dom" 2> "$out/chromium.log" || status=1
report=$(sed -n '/<pre id="result">/,/<\/pre>/p' "$out/harness.dom" | sed 's/<[^>]*>//g')
printf '%s\n' "$report"
case "$report" in
    *DONE*) ;;
    *) echo "atlas_browser: the harness did not finish" >&2; status=1 ;;
esac
case "$report" in
    *FAIL*) status=1 ;;
esac
if grep -q ':CONSOLE' "$out/chromium.log"; then
    echo "atlas_browser: console messages:" >&2
    grep ':CONSOLE' "$out/chromium.log" >&2
    status=1
fi

for p in "$@"; do
    shot="$out/$(printf '%s' "$p" | tr '/' '_' | sed 's/\.html$//').png"
    run_chromium --hide-scrollbars --window-size=1280,1300 --screenshot="$shot" \
        "file://$site/$p" 2>> "$out/chromium.log" > /dev/null || status=1
    if [ -s "$shot" ]; then
        echo "screenshot: $shot"
    else
        echo "atlas_browser: no screenshot of $p" >&2
        status=1
    fi
done
exit $status
