// The widget's strings in English, Russian, Chinese and Persian (right to left). The language
// comes from the script tag's data-lang, else the host page's <html lang>, else the browser.

export type Lang = "en" | "ru" | "zh" | "fa";

const en = {
  open: "Chat with us",
  close: "Close chat",
  title: "Support",
  unread: (n: number) => `${n} unread`,
  connecting: "Connecting…",
  online: "Connected",
  reconnecting: "Reconnecting…",
  offline: "You are offline. Messages will be sent when you are back.",
  closed: "Disconnected. Reload the page to chat again.",
  prechatIntro: "Tell us who you are so we can follow up.",
  name: "Name",
  email: "Email (optional)",
  start: "Start chat",
  placeholder: "Type a message",
  send: "Send",
  messages: "Conversation",
  you: "You",
  sending: "Sending…",
  sent: "Sent",
  read: "Read",
  typing: (who: string) => `${who} is typing…`,
  waiting: "Waiting for an agent. We will reply here as soon as someone is free.",
  noAgent: "No agent is online right now. Leave a message and we will reply by email.",
  joined: (who: string) => `${who} is helping you`,
  withheld: "A message was withheld because it contained a card number.",
  cardLocal:
    "This looks like a payment card number, so it was not sent. Never share card numbers in chat: our team will never ask for one. Remove it and try again.",
  cardServer: "The message was not delivered because it contained a card number.",
  failed: "Could not send. It will be retried.",
  resolved: "This conversation was marked as resolved. Write again to reopen it.",
};
export type Strings = typeof en;

const ru: Strings = {
  open: "Написать нам",
  close: "Закрыть чат",
  title: "Поддержка",
  unread: (n) => `Непрочитанных: ${n}`,
  connecting: "Подключение…",
  online: "Подключено",
  reconnecting: "Переподключение…",
  offline: "Нет сети. Сообщения отправятся, когда связь вернётся.",
  closed: "Соединение закрыто. Обновите страницу, чтобы продолжить.",
  prechatIntro: "Представьтесь, чтобы мы могли ответить.",
  name: "Имя",
  email: "Эл. почта (необязательно)",
  start: "Начать чат",
  placeholder: "Введите сообщение",
  send: "Отправить",
  messages: "Переписка",
  you: "Вы",
  sending: "Отправка…",
  sent: "Отправлено",
  read: "Прочитано",
  typing: (who) => `${who} печатает…`,
  waiting: "Ждём свободного оператора. Ответим здесь, как только кто-то освободится.",
  noAgent: "Сейчас нет операторов в сети. Оставьте сообщение — мы ответим по почте.",
  joined: (who) => `Вам помогает ${who}`,
  withheld: "Сообщение скрыто: в нём был номер карты.",
  cardLocal:
    "Похоже на номер платёжной карты, поэтому сообщение не отправлено. Не пишите номера карт в чат: мы никогда их не спрашиваем. Удалите номер и отправьте снова.",
  cardServer: "Сообщение не доставлено: в нём был номер карты.",
  failed: "Не удалось отправить. Попробуем ещё раз.",
  resolved: "Обращение закрыто. Напишите снова, чтобы открыть его.",
};

const zh: Strings = {
  open: "联系我们",
  close: "关闭聊天",
  title: "客服",
  unread: (n) => `${n} 条未读`,
  connecting: "正在连接…",
  online: "已连接",
  reconnecting: "正在重新连接…",
  offline: "您已离线。恢复网络后将发送消息。",
  closed: "连接已断开。请刷新页面后继续。",
  prechatIntro: "请留下您的信息，方便我们回复。",
  name: "姓名",
  email: "电子邮件（可选）",
  start: "开始聊天",
  placeholder: "输入消息",
  send: "发送",
  messages: "对话",
  you: "您",
  sending: "发送中…",
  sent: "已发送",
  read: "已读",
  typing: (who) => `${who} 正在输入…`,
  waiting: "正在等待客服。有人空闲时会在这里回复您。",
  noAgent: "目前没有在线客服。请留言，我们会通过电子邮件回复。",
  joined: (who) => `${who} 正在为您服务`,
  withheld: "一条消息因包含银行卡号而被拦截。",
  cardLocal: "这看起来像银行卡号，因此未发送。请勿在聊天中发送卡号：我们绝不会索要卡号。请删除后重试。",
  cardServer: "消息因包含银行卡号而未送达。",
  failed: "发送失败，将自动重试。",
  resolved: "此对话已标记为已解决。再次留言即可重新打开。",
};

const fa: Strings = {
  open: "گفتگو با ما",
  close: "بستن گفتگو",
  title: "پشتیبانی",
  unread: (n) => `${n} پیام خوانده‌نشده`,
  connecting: "در حال اتصال…",
  online: "متصل",
  reconnecting: "در حال اتصال دوباره…",
  offline: "شما آفلاین هستید. پیام‌ها پس از اتصال فرستاده می‌شوند.",
  closed: "اتصال قطع شد. برای ادامه صفحه را دوباره بارگذاری کنید.",
  prechatIntro: "خودتان را معرفی کنید تا بتوانیم پاسخ دهیم.",
  name: "نام",
  email: "ایمیل (اختیاری)",
  start: "شروع گفتگو",
  placeholder: "پیام خود را بنویسید",
  send: "ارسال",
  messages: "گفتگو",
  you: "شما",
  sending: "در حال ارسال…",
  sent: "ارسال شد",
  read: "خوانده شد",
  typing: (who) => `${who} در حال نوشتن است…`,
  waiting: "منتظر پشتیبان هستیم. به محض آزاد شدن کسی، همین‌جا پاسخ می‌دهیم.",
  noAgent: "اکنون هیچ پشتیبانی آنلاین نیست. پیام بگذارید، با ایمیل پاسخ می‌دهیم.",
  joined: (who) => `${who} به شما کمک می‌کند`,
  withheld: "یک پیام به دلیل داشتن شماره کارت پنهان شد.",
  cardLocal:
    "این شبیه شماره کارت بانکی است، پس فرستاده نشد. هرگز شماره کارت را در گفتگو ننویسید: ما هرگز آن را نمی‌خواهیم. آن را پاک کنید و دوباره بفرستید.",
  cardServer: "پیام به دلیل داشتن شماره کارت تحویل داده نشد.",
  failed: "ارسال نشد. دوباره تلاش می‌کنیم.",
  resolved: "این گفتگو حل‌شده علامت خورد. برای باز کردن دوباره، پیام بدهید.",
};

const TABLE: Record<Lang, Strings> = { en, ru, zh, fa };

export function pickLang(...candidates: (string | null | undefined)[]): Lang {
  for (const c of candidates) {
    const code = (c || "").toLowerCase().split(/[-_]/)[0];
    if (code in TABLE) return code as Lang;
  }
  return "en";
}

export function strings(lang: Lang): Strings {
  return TABLE[lang];
}

export function isRtl(lang: Lang): boolean {
  return lang === "fa";
}
