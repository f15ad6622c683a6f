// The viewer page of iipsrv (GET /viewer/IDENTIFIER): shows one image in OpenSeadragon through
// one of the four protocols the server speaks, chosen with the select box or `?protocol=`
// (iiif, dzi, zoomify, iip). No build step: this file is served as it is.
//
// The identifier comes from the JSON element #viewer-config, written by the server:
//   id     the identifier as text (shown with textContent only, never parsed as HTML),
//   query  the identifier percent-encoded for a query-string value (safe to concatenate),
//   root   the relative path from this page to the server's root ("../", "../../", ...),
//          so that the page also works behind a proxy that serves the server under a prefix.
// Every descriptor (info.json, .dzi, ImageProperties.xml, the IIP OBJ answer) is fetched here
// first, so that an unknown identifier or a server error shows the server's own answer.
//
// For automation (tests/it/viewer_page.rs), <body data-state> says how far the page got:
// "loading", then "drawn" (every tile the view needs has loaded) or "failed" (the descriptor
// was refused, OpenSeadragon could not open it, or a tile failed to load).
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("viewer-config").textContent);
  const root = new URL(config.root, window.location.href);
  const q = config.query;
  const select = document.getElementById("protocol");
  const status = document.getElementById("status");

  document.getElementById("identifier").textContent = config.id;
  document.title = config.id + " \u2014 iipsrv viewer";

  /** An absolute URL of a request to the server: `?` + the query string. */
  function serverUrl(query) {
    return new URL("?" + query, root).href;
  }

  /** The answer of a failed request, shown as the server gave it. */
  class ServerError extends Error {
    constructor(url, response, text) {
      super(response.status + " " + response.statusText + " from " + url +
        (text ? "\n" + text.slice(0, 2000) : ""));
    }
  }

  async function fetchText(url) {
    const response = await fetch(url);
    const text = await response.text();
    if (!response.ok) {
      throw new ServerError(url, response, text);
    }
    return text;
  }

  function attribute(xml, name) {
    const value = Number(xml.documentElement.getAttribute(name));
    if (!Number.isFinite(value) || value <= 0) {
      throw new Error("ImageProperties.xml has no valid " + name);
    }
    return value;
  }

  /** The IIP tile source: JTL=resolution,tile, sizes from the OBJ answer. */
  function iipSource(text) {
    const fields = {};
    for (const line of text.split(/\r?\n/)) {
      const colon = line.indexOf(":");
      if (colon > 0) {
        fields[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
    }
    const numbers = (name) => (fields[name] || "").split(/[\s,]+/).filter(Boolean).map(Number);
    const [width, height] = numbers("max-size");
    const [tileWidth, tileHeight] = numbers("tile-size");
    const [count] = numbers("resolution-number");
    if (![width, height, tileWidth, tileHeight, count].every((n) => n > 0)) {
      throw new Error("The IIP answer lacks Max-size, Tile-size or Resolution-number:\n" + text);
    }
    // Resolutions: "w h,w h,..." from the smallest; without it, halve as the server does.
    let sizes = [];
    const listed = numbers("resolutions");
    for (let i = 0; i + 1 < listed.length; i += 2) {
      sizes.push([listed[i], listed[i + 1]]);
    }
    if (sizes.length !== count) {
      sizes = [];
      for (let r = 0; r < count; r++) {
        const f = Math.pow(2, count - 1 - r);
        sizes.push([Math.max(1, Math.floor(width / f)), Math.max(1, Math.floor(height / f))]);
      }
    }
    const columns = sizes.map(([w]) => Math.ceil(w / tileWidth));
    const rows = sizes.map(([, h]) => Math.ceil(h / tileHeight));
    const source = new OpenSeadragon.TileSource({
      width: width, height: height, tileWidth: tileWidth, tileHeight: tileHeight,
      minLevel: 0, maxLevel: count - 1,
    });
    // OpenSeadragon level = IIP resolution number; each at the size the server reports.
    source.getLevelScale = (level) => (level >= 0 && level < count ? sizes[level][0] / width : NaN);
    source.getNumTiles = (level) => new OpenSeadragon.Point(columns[level] || 0, rows[level] || 0);
    source.getTileUrl = (level, x, y) =>
      serverUrl("FIF=" + q + "&JTL=" + level + "," + (y * columns[level] + x));
    return source;
  }

  // Per protocol: the descriptor's URL and the OpenSeadragon tile source made from it.
  const protocols = {
    iiif: {
      descriptor: () => serverUrl("IIIF=" + q + "/info.json"),
      source: (text) => JSON.parse(text),
    },
    dzi: {
      descriptor: () => serverUrl("DeepZoom=" + q + ".dzi"),
      source: (text, url) => url,
    },
    zoomify: {
      descriptor: () => serverUrl("Zoomify=" + q + "/ImageProperties.xml"),
      source: (text) => {
        const xml = new DOMParser().parseFromString(text, "application/xml");
        return {
          type: "zoomifytileservice",
          width: attribute(xml, "WIDTH"),
          height: attribute(xml, "HEIGHT"),
          tileSize: attribute(xml, "TILESIZE"),
          tilesUrl: serverUrl("Zoomify=" + q + "/"),
        };
      },
    },
    iip: {
      descriptor: () =>
        serverUrl("FIF=" + q + "&OBJ=IIP,1.0&OBJ=Max-size&OBJ=Tile-size" +
          "&OBJ=Resolution-number&OBJ=Resolutions"),
      source: iipSource,
    },
  };

  const viewer = OpenSeadragon({
    element: document.getElementById("osd"),
    showNavigationControl: false, // no button images: the Fit button above does "home"
    drawer: "canvas",
    visibilityRatio: 0.5,
  });
  document.getElementById("home").addEventListener("click", () => viewer.viewport.goHome());

  const errorBox = document.getElementById("error");
  function setState(state) {
    document.body.dataset.state = state;
  }
  let loaded = 0;
  let failed = 0;
  let lastFailure = "";
  function tally() {
    status.textContent = select.options[select.selectedIndex].text + ": " + loaded +
      " tiles loaded" + (failed ? ", " + failed + " failed (last: " + lastFailure + ")" : "");
    status.className = failed ? "failed" : "";
  }
  viewer.addHandler("tile-loaded", () => { loaded++; tally(); });
  viewer.addHandler("tile-load-failed", (event) => {
    failed++;
    lastFailure = event.message || "error";
    tally();
    setState("failed");
  });
  viewer.addHandler("open-failed", (event) => {
    errorBox.textContent = "OpenSeadragon could not open the image: " + event.message;
    setState("failed");
  });
  viewer.addHandler("open", () => {
    const image = viewer.world.getItemAt(0);
    const drawn = () => {
      if (image.getFullyLoaded() && document.body.dataset.state === "loading") {
        setState("drawn");
      }
    };
    image.addHandler("fully-loaded-change", drawn);
    drawn();
  });

  let generation = 0;
  async function open(protocol) {
    const mine = ++generation;
    loaded = 0;
    failed = 0;
    viewer.close();
    errorBox.textContent = "";
    setState("loading");
    const p = protocols[protocol];
    const url = p.descriptor();
    status.textContent = "Loading " + url;
    status.className = "";
    try {
      const text = await fetchText(url);
      if (mine !== generation) {
        return;
      }
      viewer.open(p.source(text, url));
    } catch (e) {
      if (mine === generation) {
        status.textContent = select.options[select.selectedIndex].text + ": failed";
        status.className = "failed";
        errorBox.textContent = e.message;
        setState("failed");
      }
    }
  }

  const asked = new URLSearchParams(window.location.search).get("protocol");
  select.value = Object.prototype.hasOwnProperty.call(protocols, asked) ? asked : "iiif";
  select.addEventListener("change", () => {
    const params = new URLSearchParams(window.location.search);
    params.set("protocol", select.value);
    window.history.replaceState(null, "", "?" + params.toString());
    open(select.value);
  });
  open(select.value);
})();
