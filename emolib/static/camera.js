// emolib camera widget: the anywidget ESM of emolib.camera.CameraWidget.
//
// getUserMedia -> <video> -> a small canvas (at most width x height, e.g. 320x240) -> JPEG
// -> model.send(..., [bytes]) to the kernel, which answers {type: "result", seq, faces, ...}.
// Back-pressure: the next frame is grabbed only once the kernel has answered the previous one,
// so a slow kernel lowers the frame rate instead of building a queue. A watchdog gives up on an
// answer after timeout_s (a lost message, a restarted kernel); an answer arriving after that
// is ignored as stale. Nothing is stored: each frame lives as one Blob until it is sent.

const COLOURS = ["#e53935", "#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#00acc1", "#6d4c41"];

function el(tag, cls, parent) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (parent) parent.appendChild(e);
  return e;
}

function render({ model, el: host }) {
  const root = el("div", "emolib-camera", host);
  const bar = el("div", "emolib-camera-bar", root);
  const button = el("button", "emolib-camera-start jupyter-button", bar);
  button.textContent = "Start camera";
  const status = el("span", "emolib-camera-status", bar);
  status.textContent = "camera off (frames go to the kernel only while it is on; nothing is stored)";
  const rate = el("span", "emolib-camera-rate", bar);
  const main = el("div", "emolib-camera-main", root);
  const stage = el("div", "emolib-camera-stage", main);
  const video = el("video", "emolib-camera-video", stage);
  video.muted = true;
  video.playsInline = true;
  const overlay = el("canvas", "emolib-camera-overlay", stage);
  const faces = el("div", "emolib-camera-faces", main);
  const timeline = el("div", "emolib-camera-timeline", root);
  const grab = document.createElement("canvas"); // never attached: the frame sent to the kernel

  let stream = null;
  let running = false;
  let seq = 0;
  let inFlight = null; // seq of the frame the kernel has not answered yet
  let watchdog = null;
  let timer = null;
  let lastSend = 0;
  const answeredAt = []; // times of the answers of the last 5 s, for the rate shown
  const stats = { sent: 0, answered: 0, lost: 0, stale: 0 };

  function publish() {
    // for the browser tests and anyone curious: data-sent, data-answered, ...
    for (const [k, v] of Object.entries(stats)) root.dataset[k] = String(v);
  }
  publish();

  function say(text) {
    status.textContent = text;
  }

  async function start() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      say("this page gets no camera: browsers allow one only on https:// or http://localhost / 127.0.0.1");
      return;
    }
    button.disabled = true;
    say("asking for the camera...");
    try {
      const w = model.get("width"), h = model.get("height");
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: w * 2 }, height: { ideal: h * 2 } },
                                                           audio: false });
    } catch (e) {
      say(`no camera: ${e.name}${e.message ? " (" + e.message + ")" : ""}`);
      button.disabled = false;
      return;
    }
    video.srcObject = stream;
    try {
      await video.play();
    } catch (e) { /* autoplay of a muted stream is allowed; frames are drawn from it anyway */ }
    running = true;
    button.disabled = false;
    button.textContent = "Stop camera";
    say("camera on, waiting for the kernel...");
    pump();
  }

  function stop(text) {
    running = false;
    clearTimeout(timer);
    clearTimeout(watchdog);
    inFlight = null;
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    video.srcObject = null;
    button.textContent = "Start camera";
    say(text || "camera off");
    rate.textContent = "";
  }

  button.addEventListener("click", () => (running ? stop() : start()));

  async function pump() {
    clearTimeout(timer);
    if (!running || inFlight !== null) return; // back-pressure: one frame in flight at most
    if (!root.isConnected) return stop();
    const maxFps = Math.max(0.5, model.get("max_fps"));
    const wait = lastSend + 1000 / maxFps - performance.now();
    // not ready yet, hidden (another tab of the playground) or too soon: look again later
    if (video.readyState < 2 || !video.videoWidth || root.offsetParent === null || wait > 0) {
      timer = setTimeout(pump, Math.max(wait, 50));
      return;
    }
    const scale = Math.min(1, model.get("width") / video.videoWidth, model.get("height") / video.videoHeight);
    grab.width = Math.max(1, Math.round(video.videoWidth * scale));
    grab.height = Math.max(1, Math.round(video.videoHeight * scale));
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    const mine = ++seq;
    inFlight = mine;
    lastSend = performance.now();
    const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", model.get("quality")));
    if (!running || inFlight !== mine) return;
    if (!blob) {
      inFlight = null;
      say("the browser could not encode the frame");
      timer = setTimeout(pump, 500);
      return;
    }
    const bytes = await blob.arrayBuffer();
    if (!running || inFlight !== mine) return;
    model.send({ type: "frame", seq: mine, width: grab.width, height: grab.height }, undefined, [bytes]);
    stats.sent += 1;
    publish();
    watchdog = setTimeout(() => {
      if (inFlight !== mine) return;
      inFlight = null; // give up on this answer; a late one is dropped as stale
      stats.lost += 1;
      publish();
      say(`no answer from the kernel for ${model.get("timeout_s")} s, sending a new frame`);
      pump();
    }, model.get("timeout_s") * 1000);
  }

  function draw(msg) {
    const vw = video.clientWidth || overlay.width, vh = video.clientHeight || overlay.height;
    overlay.width = vw;
    overlay.height = vh;
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, vw, vh);
    const sx = vw / (msg.width || vw), sy = vh / (msg.height || vh);
    ctx.lineWidth = 3;
    ctx.font = "bold 15px sans-serif";
    (msg.faces || []).forEach((f, i) => {
      const [x, y, w, h] = f.box;
      const colour = COLOURS[i % COLOURS.length];
      ctx.strokeStyle = colour;
      ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
      const label = `${i}: ${f.emotion} ${Math.round(100 * f.confidence)}%`;
      const tw = ctx.measureText(label).width + 8;
      const ty = y * sy > 20 ? y * sy - 20 : y * sy + h * sy;
      ctx.fillStyle = colour;
      ctx.fillRect(x * sx - 1.5, ty, tw, 20);
      ctx.fillStyle = "white";
      ctx.fillText(label, x * sx + 3, ty + 15);
    });
    faces.innerHTML = msg.panel_html || ""; // built by the kernel from escaped text
    if (msg.timeline_svg) timeline.innerHTML = msg.timeline_svg;
  }

  function onMessage(msg) {
    if (!msg || msg.type !== "result") return;
    if (msg.seq !== inFlight) {
      stats.stale += 1; // the answer to a frame the watchdog gave up on
      publish();
      return;
    }
    clearTimeout(watchdog);
    inFlight = null;
    stats.answered += 1;
    const now = performance.now();
    answeredAt.push(now);
    while (answeredAt.length && now - answeredAt[0] > 5000) answeredAt.shift();
    publish();
    if (running) {
      draw(msg);
      const span = answeredAt.length > 1 ? (now - answeredAt[0]) / 1000 : 0;
      rate.textContent = span > 0 ? `${((answeredAt.length - 1) / span).toFixed(1)} updates/s` : "";
      rate.dataset.rate = span > 0 ? ((answeredAt.length - 1) / span).toFixed(2) : "0";
      say(msg.message || msg.status);
      root.dataset.status = msg.status;
      root.dataset.faces = String((msg.faces || []).length);
    }
    pump();
  }

  model.on("msg:custom", onMessage);
  return () => {
    model.off("msg:custom", onMessage);
    stop();
  };
}

export default { render };
