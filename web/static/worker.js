// Module worker running the annotation engine: the page's wasm bundle, entered through
// start_worker(), which installs the message handler and posts {"kind":"ready"}.
import init, { start_worker } from './genecompass_web.js';
await init();
start_worker();
