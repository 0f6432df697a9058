/** Imports every command module so it registers itself (one line per module). */
export {};
import "./sim.js";
