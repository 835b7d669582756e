import { defineConfig } from "vite";

// The build lands in the Python package, served by `openvpp serve --web-listen`.
export default defineConfig({
  base: "/",
  build: {
    outDir: "../static",
    emptyOutDir: true,
    sourcemap: false,
    // One module and one stylesheet: the page makes no request it can avoid.
    modulePreload: false,
    chunkSizeWarningLimit: 400,
  },
});
