// Attachments in the widget and the consoles: upload with progress (XMLHttpRequest: fetch has
// no upload progress), and opening a file by fetching it with the bearer token in a header and
// handing the browser a blob: URL to save. A token never goes into a URL.

export interface Att {
  id: number;
  name: string;
  content_type: string;
  size: number;
}

/** The types the gateway accepts (it checks each file's first bytes against its type). */
export const ACCEPT = "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain";

/** "930 B", "12 KB", "3.4 MB". */
export function size(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export interface Uploaded {
  status: number;
  body: any;
}

/** POSTs the file as the raw body; `progress` gets 0-100 as it goes. */
export function upload(url: string, token: string, file: File, progress: (pct: number) => void): Promise<Uploaded> {
  return new Promise((resolve) => {
    const x = new XMLHttpRequest();
    x.open("POST", url);
    x.setRequestHeader("authorization", `Bearer ${token}`);
    x.setRequestHeader("content-type", file.type || "application/octet-stream");
    x.setRequestHeader("x-file-name", encodeURIComponent(file.name));
    x.setRequestHeader("x-client-id", `f-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`);
    x.upload.onprogress = (e) => e.lengthComputable && progress(Math.round((e.loaded / e.total) * 100));
    x.onload = () => {
      let body: any = null;
      try {
        body = JSON.parse(x.responseText);
      } catch {
        /* not JSON */
      }
      resolve({ status: x.status, body });
    };
    x.onerror = () => resolve({ status: 0, body: null });
    x.send(file);
  });
}

/** Fetches the file with the token and lets the browser save it under its name. */
export async function openFile(url: string, token: string, name: string): Promise<void> {
  const r = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  if (!r.ok) {
    let message = `HTTP ${r.status}`;
    try {
      message = (await r.json()).error.message || message;
    } catch {
      /* keep the status */
    }
    throw new Error(message);
  }
  const href = URL.createObjectURL(await r.blob());
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60_000);
}
