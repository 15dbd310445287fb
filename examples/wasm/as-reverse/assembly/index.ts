// text-reverse: a cap-v1 plugin in AssemblyScript.
//
//   text.reverse  {"text": "..."}  ->  {"text": "...", "length": N}
//
// The text is reversed by code points (surrogate pairs stay whole). The ABI glue is the
// first block; globals keep the request and the response alive for the garbage collector.

let request: ArrayBuffer | null = null;
let response: ArrayBuffer | null = null;

export function cap_abi_version(): i32 {
  return 1;
}

export function cap_alloc(len: i32): usize {
  response = null; // the previous output is freed once the next call starts
  request = new ArrayBuffer(len);
  return changetype<usize>(request);
}

function reply(json: string, error: bool): i64 {
  const out = String.UTF8.encode(json);
  response = out;
  const flag: i64 = error ? 0x80000000 : 0;
  return (i64(changetype<usize>(out)) << 32) | i64(out.byteLength) | flag;
}

function fail(message: string): i64 {
  return reply('{"code":"INVALID_PARAMS","message":' + quote(message) + "}", true);
}

function quote(text: string): string {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c == 0x22) out += '\\"';
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x0d) out += "\\r";
    else if (c == 0x09) out += "\\t";
    else if (c < 0x20) out += "\\u00" + (c < 0x10 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + '"';
}

// Decodes the JSON string whose opening quote is at `start`; sets `parsedEnd` past it.
let parsedEnd: i32 = -1;

function parseString(json: string, start: i32): string | null {
  let out = "";
  let i = start + 1;
  while (i < json.length) {
    const c = json.charCodeAt(i);
    if (c == 0x22) {
      parsedEnd = i + 1;
      return out;
    }
    if (c != 0x5c) {
      out += String.fromCharCode(c);
      i++;
      continue;
    }
    if (i + 1 >= json.length) return null;
    const e = json.charCodeAt(i + 1);
    i += 2;
    if (e == 0x6e) out += "\n";
    else if (e == 0x74) out += "\t";
    else if (e == 0x72) out += "\r";
    else if (e == 0x62) out += "\b";
    else if (e == 0x66) out += "\f";
    else if (e == 0x75) {
      if (i + 4 > json.length) return null;
      out += String.fromCharCode(<i32>parseInt(json.substring(i, i + 4), 16));
      i += 4;
    } else out += String.fromCharCode(e);
  }
  return null;
}

export function cap_call(ptr: usize, len: i32): i64 {
  const json = String.UTF8.decodeUnsafe(ptr, len);
  const key = json.indexOf('"text"');
  if (key < 0) return fail("missing member 'text'");
  let i = key + 6;
  while (i < json.length && (json.charCodeAt(i) == 0x20 || json.charCodeAt(i) == 0x3a)) i++;
  if (i >= json.length || json.charCodeAt(i) != 0x22) return fail("'text' must be a string");
  const text = parseString(json, i);
  if (text === null) return fail("'text' is not a valid JSON string");
  let reversed = "";
  let points = 0;
  let j = text.length - 1;
  while (j >= 0) {
    const low = text.charCodeAt(j);
    if (j > 0 && low >= 0xdc00 && low <= 0xdfff) {
      const high = text.charCodeAt(j - 1);
      if (high >= 0xd800 && high <= 0xdbff) {
        reversed += String.fromCharCode(high) + String.fromCharCode(low);
        j -= 2;
        points++;
        continue;
      }
    }
    reversed += String.fromCharCode(low);
    j--;
    points++;
  }
  return reply('{"text":' + quote(reversed) + ',"length":' + points.toString() + "}", false);
}
