//! Throughput of the card-number screen on chat text.
//!
//! `cargo bench -p deskgate --bench screen`
//!
//! - `ascii_chat`: English, French, Spanish and German support chat written in ASCII,
//!   with order numbers, dates, prices and times, and a card number in one message of
//!   fifty; scanned message by message and as one document.
//! - `mixed_script`: the same kinds of messages in Russian, Chinese, Japanese,
//!   Arabic, Hindi, Greek and Korean, some with native digits, with some English.
//! - `adversarial`: a megabyte of digits and spaces, of four-digit groups, and of
//!   card numbers back to back.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use deskgate::screen::Screen;

const ASCII_MESSAGES: &[&str] = &[
    "Hi, I ordered a pair of running shoes last week and they still have not arrived.",
    "Could you check order #A-2026-004512 for me? It says shipped on 03/12.",
    "The total was $129.99 but I was charged twice, can you refund one of them?",
    "Sure, let me look that up for you. Can you confirm the email on the account?",
    "It is jane.doe@example.com and my phone is +1 415 555 2671.",
    "Thanks! I can see two charges of 129.99 on March 12 at 10:42 and 10:43.",
    "Bonjour, je n'ai pas recu mon colis, commande 58213 du 15/03/2026.",
    "Hola, quiero cambiar la direccion de entrega del pedido 77120, por favor.",
    "Guten Tag, die Lieferung kam beschaedigt an, Bestellnummer 2026-3391.",
    "No problem, I have refunded the duplicate charge, it takes 3-5 business days.",
    "Great, thank you so much for your help today!",
    "Is there anything else I can help you with? Our hours are 9:00-18:00 CET.",
    "Yes, my card was declined, the number is 4111 1111 1111 1111, can you try again?",
    "Please never send card numbers in the chat, I have removed that message.",
    "Version 2.4.1 of the app keeps crashing when I open the cart on iOS 17.3.",
    "Tracking number 1Z999AA10123456784 shows it is still in Memphis since Monday.",
    "Hello? Is anyone there?",
    "Yes, sorry for the wait. How can I help?",
    "My package was supposed to arrive yesterday between 2 and 6 pm.",
    "I see it is out for delivery today, it should arrive before 8 pm.",
    "Okay, and can I change the delivery address?",
    "Unfortunately not once it is out for delivery, but you can pick it up at the depot.",
    "Where is the depot?",
    "It is at 221 Baker Street, open 8:00 to 20:00, Monday to Saturday.",
    "Perfect, thanks.",
    "I would like to return the blue jacket, size M, it is too small.",
    "Of course. You have 30 days to return it. I will email you a label.",
    "Do I need to print it?",
    "No, you can show the QR code at any drop-off point.",
    "The discount code SPRING25 did not work at checkout.",
    "That code expired on 31/03, but I can apply 25% off manually.",
    "That would be great, the order is 100-3345-8812.",
    "Done, you will see a refund of 18.75 within a week.",
    "My account is locked after I tried to log in 5 times.",
    "I have sent you a reset link, it is valid for 15 minutes.",
    "Got it, I am in now. Thank you!",
    "Can I get an invoice with my company's VAT number?",
    "Sure, please send the VAT number and the billing address.",
    "It is GB123456789, 10 Downing Street, London SW1A 2AA.",
    "Thanks, the invoice will be in your inbox in a few minutes.",
    "Why was I charged a 4.99 delivery fee? I have a premium membership.",
    "Your membership renewed on 02/04 but the order was placed on 01/04.",
    "Ah I see. Can you waive it this time?",
    "Yes, I have refunded the 4.99 as a one-off.",
    "Do you ship to Canada?",
    "We do, delivery takes 5 to 7 business days and costs 12 CAD.",
    "Is the 65 inch TV in stock in the Leeds store?",
    "It shows 3 in stock there as of 11:30 this morning.",
    "Can I reserve one?",
    "I have reserved one for 48 hours under your name.",
];

const MIXED_MESSAGES: &[&str] = &[
    "Здравствуйте, я заказал кроссовки на прошлой неделе, но они до сих пор не пришли.",
    "Номер заказа 58213 от 15.03.2026, сумма 4 500 ₽.",
    "您好，我的订单号是20260315，还没有发货，请帮我查一下。",
    "我昨天付了两次款，每次129元，请退还一次。",
    "こんにちは、注文番号は７７１２０です。配送先を変更したいです。",
    "カードが使えませんでした。もう一度試してもらえますか？",
    "مرحبا، طلبت ٣ منتجات يوم ١٢ مارس ولم يصل شيء حتى الآن.",
    "رقم الطلب ٥٨٢١٣ والمبلغ ١٢٩٫٩٩ دولار",
    "नमस्ते, मेरा ऑर्डर नंबर ४५१२ है और यह अभी तक नहीं आया।",
    "कृपया मेरा रिफंड जल्दी कर दीजिए, धन्यवाद।",
    "Γεια σας, η παραγγελία μου 77120 δεν έχει φτάσει ακόμα.",
    "안녕하세요, 주문번호 2026-3391 배송이 지연되고 있습니다.",
    "Thanks, I have refunded the duplicate charge, it takes 3-5 business days.",
    "카드 번호는 4111 1111 1111 1111 입니다",
    "谢谢您的帮助！",
    "Спасибо, всё понятно, хорошего дня!",
    "Добрый день! Можно изменить адрес доставки?",
    "К сожалению, заказ уже передан курьеру.",
    "Хорошо, тогда заберу сам. Где пункт выдачи?",
    "Ул. Ленина, д. 15, с 9:00 до 21:00.",
    "我想退货，衣服太小了。",
    "没问题，您有30天的退货期，我会发给您退货标签。",
    "需要打印吗？",
    "不需要，在取件点出示二维码就可以。",
    "優惠碼不能用，怎麼辦？",
    "この商品はいつ入荷しますか？",
    "来週の月曜日に入荷予定です。",
    "ありがとうございます。予約できますか？",
    "はい、４８時間お取り置きします。",
    "هل يمكنني تغيير عنوان التوصيل؟",
    "للأسف الطلب مع المندوب الآن.",
    "أين يمكنني استلامه؟",
    "من الفرع الرئيسي من ٩ صباحا حتى ٩ مساء.",
    "मुझे बिल चाहिए, मेरा जीएसटी नंबर भेज रहा हूँ।",
    "ठीक है, बिल कुछ मिनट में ईमेल पर आ जाएगा।",
    "क्या आप दिल्ली में डिलीवरी करते हैं?",
    "हाँ, ५ से ७ दिन लगते हैं।",
    "Μπορώ να επιστρέψω το προϊόν;",
    "Φυσικά, έχετε 30 ημέρες.",
    "배송비가 왜 청구되었나요?",
    "멤버십이 4월 2일에 갱신되어서 그렇습니다.",
    "이번에는 환불해 드렸습니다.",
    "Merhaba, siparişim nerede?",
    "Kargoya verildi, yarın teslim edilecek.",
    "שלום, ההזמנה שלי לא הגיעה.",
    "אני בודק, רגע אחד בבקשה.",
    "Xin chào, tôi muốn đổi size áo.",
    "Được ạ, bạn gửi lại mã đơn hàng nhé.",
    "สวัสดีค่ะ สินค้าจะมาถึงเมื่อไหร่คะ",
    "ประมาณ ๓ ถึง ๕ วันทำการค่ะ",
];

/// Messages repeated to about `bytes`, in a fixed order.
fn messages(pool: &[&'static str], bytes: usize) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut total = 0;
    for m in pool.iter().cycle() {
        if total >= bytes {
            break;
        }
        out.push(*m);
        total += m.len();
    }
    out
}

fn chat(c: &mut Criterion, name: &str, pool: &[&'static str]) {
    let screen = Screen::new();
    let msgs = messages(pool, 1 << 20);
    let bytes: usize = msgs.iter().map(|m| m.len()).sum();
    let document = msgs.join("\n");
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("per_message", |b| {
        b.iter(|| {
            let mut blocked = 0;
            for m in &msgs {
                blocked += usize::from(screen.scan(black_box(m)).is_blocked());
            }
            blocked
        })
    });
    group.throughput(Throughput::Bytes(document.len() as u64));
    group.bench_function("document", |b| {
        b.iter(|| screen.scan(black_box(&document)).findings().len())
    });
    group.finish();
}

fn ascii_chat(c: &mut Criterion) {
    chat(c, "ascii_chat", ASCII_MESSAGES);
}

fn mixed_script(c: &mut Criterion) {
    chat(c, "mixed_script", MIXED_MESSAGES);
}

fn adversarial(c: &mut Criterion) {
    let screen = Screen::new();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let size = 1 << 20;
    let mut spaced = String::with_capacity(size);
    while spaced.len() < size {
        spaced.push(char::from(b'0' + (next() % 10) as u8));
        spaced.push(' ');
    }
    let mut fours = String::with_capacity(size);
    while fours.len() < size {
        fours.push_str(&format!("{:04} ", next() % 10_000));
    }
    let cards = "4111 1111 1111 1111 ".repeat(size / 20);
    let mut group = c.benchmark_group("adversarial");
    group.sample_size(20);
    for (name, text) in [
        ("digits_and_spaces", &spaced),
        ("four_digit_groups", &fours),
        ("cards_back_to_back", &cards),
    ] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), text, |b, text| {
            b.iter(|| screen.scan(black_box(text)).findings().len())
        });
    }
    group.finish();
}

criterion_group!(benches, ascii_chat, mixed_script, adversarial);
criterion_main!(benches);
