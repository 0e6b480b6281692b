// Starts Swagger UI on /docs. A file of its own, not an inline <script>, so that the page's
// Content-Security-Policy can say script-src 'self' and nothing more. The page's element
// carries the URLs (they depend on the root path the API is served under).
"use strict";
(function () {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // No badge fetched from the public validator: the page talks to its own origin only.
    validatorUrl: null,
    // BaseLayout needs only the API preset (the standalone preset is another file).
    presets: [SwaggerUIBundle.presets.apis],
  });
})();
