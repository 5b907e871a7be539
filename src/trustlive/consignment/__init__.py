"""Appraisal and consignment (鉴定估价 / 寄卖): docs/consignment.md."""
