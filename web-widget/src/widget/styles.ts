// The widget's CSS, applied to its shadow root as a constructed stylesheet: isolated from the
// host page both ways, and allowed by a strict style-src (no inline <style> element needed).
export const CSS = `
:host{all:initial}
*{box-sizing:border-box}
[hidden]{display:none!important}
header,.state,.notice,.typing,.alert,form{flex-shrink:0}
.root{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Vazirmatn",sans-serif;color:#1d2330;position:fixed;bottom:20px;right:20px;z-index:2147483000;display:flex;flex-direction:column;align-items:flex-end;gap:12px}
.root[dir=rtl]{right:auto;left:20px;align-items:flex-start}
button,input,textarea{font:inherit;color:inherit}
.launcher{position:relative;border:0;border-radius:28px;background:#1f4fd1;color:#fff;padding:14px 20px;font-weight:600;cursor:pointer;box-shadow:0 4px 14px rgba(20,30,60,.3)}
.launcher:hover{background:#183fa8}
:focus-visible{outline:3px solid #f0a500;outline-offset:2px}
.badge{position:absolute;top:-6px;right:-6px;min-width:22px;height:22px;border-radius:11px;background:#b3261e;color:#fff;font-size:12px;line-height:22px;text-align:center;padding:0 6px}
.root[dir=rtl] .badge{right:auto;left:-6px}
.panel{width:min(380px,calc(100vw - 24px));height:min(560px,calc(100vh - 110px));background:#fff;border-radius:14px;box-shadow:0 10px 40px rgba(20,30,60,.3);display:flex;flex-direction:column;overflow:hidden}
.panel[hidden]{display:none}
header{background:#1f4fd1;color:#fff;padding:12px 16px;display:flex;align-items:center;gap:8px}
header h2{font-size:16px;margin:0;flex:1}
.x{background:transparent;border:0;color:#fff;font-size:22px;line-height:1;cursor:pointer;padding:4px 8px;border-radius:6px}
.callbtn{border:1px solid #fff;border-radius:8px;background:transparent;color:#fff;padding:4px 10px;font-weight:600;cursor:pointer}
.callbar{display:flex;align-items:center;gap:8px;padding:6px 16px;background:#e6f4ea;color:#1e4620;font-size:13px;flex-shrink:0}
.cstate{flex:1;font-variant-numeric:tabular-nums}
.hangup{border:0;border-radius:8px;background:#b3261e;color:#fff;padding:4px 12px;font-weight:600;cursor:pointer}
.state{font-size:13px;padding:6px 16px;background:#eef1f6;color:#33405a}
.state.warn{background:#fff4d6;color:#5c4300}
.notice{font-size:13px;padding:8px 16px;background:#e8f0fe;color:#1d2330}
.log{flex:1;overflow-y:auto;margin:0;padding:12px 16px;list-style:none;display:flex;flex-direction:column;gap:8px}
.msg{max-width:82%;padding:8px 12px;border-radius:12px;background:#eef1f6;white-space:pre-wrap;overflow-wrap:anywhere;align-self:flex-start}
.msg.me{align-self:flex-end;background:#1f4fd1;color:#fff}
.msg.sys{align-self:center;background:transparent;color:#4a5568;font-size:13px;text-align:center}
.msg.withheld{background:#fde8e7;color:#7a1c15;font-style:italic}
.meta{display:block;font-size:12px;opacity:.9;margin-top:2px}
.who{display:block;font-size:12px;font-weight:600;color:#33405a}
.typing{min-height:20px;font-size:13px;color:#4a5568;padding:0 16px}
.alert{margin:0 16px 8px;padding:8px 12px;border-radius:8px;background:#fde8e7;color:#7a1c15;font-size:13px}
.alert[hidden]{display:none}
form.compose{display:flex;gap:8px;padding:10px 12px;border-top:1px solid #dde2ea}
textarea{flex:1;resize:none;border:1px solid #8b95a7;border-radius:8px;padding:8px 10px;height:44px;max-height:120px;background:#fff}
.primary{border:0;border-radius:8px;background:#1f4fd1;color:#fff;padding:0 16px;font-weight:600;cursor:pointer;min-height:44px}
.primary:hover{background:#183fa8}
.verify{margin:0 12px 8px;padding:10px 12px;border:2px solid #1f4fd1;border-radius:10px;background:#f5f8ff;display:flex;flex-direction:column;gap:6px;font-size:14px;flex-shrink:0}
.verify h3{margin:0;font-size:15px}
.verify p{margin:0}
.vnever{font-size:13px;color:#33405a}
.vform{display:flex;flex-direction:column;gap:4px}
.vrow{display:flex;gap:8px}
.vrow input{flex:1;min-width:0;border:1px solid #8b95a7;border-radius:8px;padding:8px 10px;font-size:18px;letter-spacing:.2em;font-variant-numeric:tabular-nums;background:#fff}
.vmeta{font-size:13px;color:#33405a;font-variant-numeric:tabular-nums}
.vsay:empty{display:none}
.vsay.bad{color:#7a1c15;font-weight:600}
.vsay.ok{color:#1e6b3a;font-weight:600}
.vclose{align-self:flex-start;border:1px solid #1f4fd1;border-radius:8px;background:#fff;color:#1f4fd1;padding:6px 14px;font-weight:600;cursor:pointer}
form.prechat{padding:16px;display:flex;flex-direction:column;gap:10px}
form.prechat label{display:flex;flex-direction:column;gap:4px;font-size:14px}
form.prechat input{border:1px solid #8b95a7;border-radius:8px;padding:8px 10px}
.attach{border:1px solid #8b95a7;border-radius:8px;background:#fff;min-width:44px;min-height:44px;cursor:pointer;font-size:22px;font-weight:600;line-height:1}
.file{border:1px solid currentColor;border-radius:8px;background:transparent;color:inherit;padding:4px 8px;cursor:pointer;text-align:start;overflow-wrap:anywhere}
.progress{font-size:13px;padding:0 16px 6px;color:#33405a}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (max-width:480px){.root{bottom:12px;right:12px}.root[dir=rtl]{left:12px}.panel{width:calc(100vw - 24px);height:calc(100vh - 90px)}}
`;
