// What the widget screens before a message leaves the page: the gateway's card-number rules
// (src/lib/screen.ts) over the tail of this customer's sent messages, kept as the gateway keeps
// it (gateway/src/desk/screening.rs), so that a number split over two messages is refused here
// too. test/screen.mjs runs the shared vectors through this class.
import { scan, ConversationTail, type Verdict } from "../lib/screen";

export class OutgoingScreen {
  private tail = new ConversationTail();

  /** Screens the next message. A refused one is not sent, so the tail stays where it was,
   * as the gateway's does: it never saw that message. */
  check(text: string): Verdict {
    const { groups, trailing } = this.tail;
    const verdict = scan(text, this.tail);
    if (verdict.blocked) {
      this.tail.groups = groups;
      this.tail.trailing = trailing;
    }
    return verdict;
  }

  /** The gateway withheld or refused a message this screen let through: it dropped its tail,
   * and so does this one. */
  forget(): void {
    this.tail = new ConversationTail();
  }
}
