// comet-echo.js as an ES module: import CometEcho from "./comet-echo.mjs";
// (comet.mjs, and so comet.js, first: the connector is built on it.)
import "./comet.mjs";
import "./comet-echo.js";

const CometEcho = globalThis.CometEcho;
export default CometEcho;
