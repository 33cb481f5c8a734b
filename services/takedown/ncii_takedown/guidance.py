"""The victim's evidence checklist (issue 10, "delete nothing"): what to keep before anything is
reported or removed, in plain words, in English and Traditional Chinese (Taiwan). Static and
versioned: a case worker goes through it with her; the version says which text she was given.
Nothing here is personal, so it needs no events (ticking items off would, and is not built)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Language = Literal["en", "zh-TW"]
CHECKLIST_VERSION = 1


@dataclass(frozen=True)
class ChecklistItem:
    item_id: str
    en: str
    zh_tw: str

    def text(self, language: Language) -> str:
        return self.en if language == "en" else self.zh_tw


EVIDENCE_CHECKLIST: tuple[ChecklistItem, ...] = (
    ChecklistItem(
        "delete_nothing",
        "Delete nothing yet: not the messages, not the account, not the pictures you were sent. "
        "They are the proof.",
        "先不要刪除任何東西：訊息、帳號、收到的圖片都先留著，它們是證據。",
    ),
    ChecklistItem(
        "pages",
        "For every place the images appear: keep the web address (URL) and a screenshot of the "
        "whole page with the date and time visible.",
        "每一個出現影像的地方：保留網址（URL），並截下整個頁面，畫面上要看得到日期和時間。",
    ),
    ChecklistItem(
        "accounts",
        "The accounts that posted or threatened: their name, user ID and profile link, with a "
        "screenshot of the profile.",
        "張貼或威脅你的帳號：記下名稱、使用者 ID 和個人頁面連結，並截圖個人頁面。",
    ),
    ChecklistItem(
        "conversations",
        "The conversations: screenshots of the whole thread, including threats, demands for "
        "money or more images, and payment details you were given.",
        "對話紀錄：截下完整的對話，包括威脅、要求金錢或更多影像的內容，以及對方給你的付款資料。",
    ),
    ChecklistItem(
        "friends",
        "Friends and contacts who saw or received the images: who they are and when it "
        "happened, in case they can confirm it later.",
        "看過或收到影像的朋友和聯絡人：記下是誰、什麼時候，日後可能需要他們協助證明。",
    ),
    ChecklistItem(
        "timeline",
        "A short timeline in your own words: when you found out, what happened, what you did.",
        "用你自己的話寫下簡短的時間經過：何時發現、發生了什麼事、你做了哪些事。",
    ),
    ChecklistItem(
        "keep_safe",
        "Keep copies somewhere safe that only you can open; your case worker will preserve "
        "them for the takedown (the images themselves never need to be sent to us).",
        "把這些資料存放在只有你能打開的安全地方；你的個案工作者會為下架保存證據（影像本身永遠不需要傳給我們）。",
    ),
)


def checklist(language: Language) -> dict[str, object]:
    return {
        "version": CHECKLIST_VERSION,
        "language": language,
        "items": [{"id": i.item_id, "text": i.text(language)} for i in EVIDENCE_CHECKLIST],
    }
