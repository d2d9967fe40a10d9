// Evaluated in the demo page by bench/pipeline.py: the app's own analyzer on the pictures it is handed.
(async ([pictures, mode]) => {
  const analyzer = window.studio.analyzer;
  const { faceapi, predictEmotion } = await import("/static/js/inference.js");
  if (mode === "faceapi" && !faceapi.nets.faceLandmark68Net.isLoaded) {
    await faceapi.nets.faceLandmark68Net.loadFromUri(window.STUDIO.vendor + "@vladmandic/face-api/model");
    await faceapi.nets.tinyFaceDetector.loadFromUri(window.STUDIO.vendor + "@vladmandic/face-api/model");
  }
  // face-api's own path: its tiny detector (input 320, score 0.4, a bordered second try) and its landmark net
  const tiny = { pad: 0.25, options: new faceapi.TinyFaceDetectorOptions({ inputSize: 320, scoreThreshold: 0.4 }) };
  const MAP68 = [[42, 43, 44, 45, 46, 47], [36, 37, 38, 39, 40, 41], [42], [45], [39], [36], [22], [26], [21], [17], [30], [54], [48], [51], [57]];
  const out = [];
  for (const picture of pictures) {
    const image = new Image();
    image.src = picture.src;
    await image.decode();
    if (mode === "faceapi") {
      // the same detection as the app's (plain, then inside a border when nothing is found)
      let found = await faceapi.detectAllFaces(image, tiny.options).withFaceLandmarks();
      let off = 0;
      if (!found.length) {
        off = Math.round(tiny.pad * Math.max(image.width, image.height));
        const canvas = document.createElement("canvas");
        canvas.width = image.width + 2 * off; canvas.height = image.height + 2 * off;
        const c = canvas.getContext("2d"); c.fillStyle = "black"; c.fillRect(0, 0, canvas.width, canvas.height); c.drawImage(image, off, off);
        found = await faceapi.detectAllFaces(canvas, tiny.options).withFaceLandmarks();
      }
      out.push(found.map((f) => ({ points: MAP68.map((idx) => [
        idx.reduce((s, j) => s + f.landmarks.positions[j].x, 0) / idx.length - off,
        idx.reduce((s, j) => s + f.landmarks.positions[j].y, 0) / idx.length - off]) })));
      continue;
    }
    if (mode === "video") {
      analyzer.reset();
      const times = [];
      let faces = 0;
      for (let i = 0; i < 30; i++) {
        const r = await analyzer.analyze(image, { video: true });
        times.push(r.ms.frame); faces = r.faces.length;
      }
      out.push({ times, faces });
      continue;
    }
    const r = await analyzer.analyze(image);
    const row = { faces: r.faces.map((f) => ({ box: f.box, points: f.points, probabilities: f.probabilities })), ms: r.ms };
    if (picture.face96) {
      const face = new Image(); face.src = picture.face96; await face.decode();
      const c = document.createElement("canvas"); c.width = c.height = 96;
      const ctx = c.getContext("2d", { willReadFrequently: true }); ctx.drawImage(face, 0, 0);
      const rgba = ctx.getImageData(0, 0, 96, 96).data;
      const grey = Float32Array.from({ length: 9216 }, (_, i) => rgba[4 * i]);
      row.straight = predictEmotion(analyzer.models, [grey])[0];
    }
    out.push(row);
  }
  return out;
})
