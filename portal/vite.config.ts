// The portal's build: a deterministic bundle in dist/ (hashed assets under dist/assets/, no
// source maps), and a dev server that proxies the API to a local control plane.
import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// `cargo xtask up` serves the API on 127.0.0.1:7420.
const api = "http://127.0.0.1:7420";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    assetsDir: "assets",
    sourcemap: false,
    emptyOutDir: true,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: {
      "/v1": { target: api, changeOrigin: false },
      "/openapi.json": api,
      "/healthz": api,
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
